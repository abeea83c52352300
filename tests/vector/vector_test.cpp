// Reasoning-vector arithmetic on synthesized models. Expected values are
// recomputed here with plain scalar loops over tensors read by the
// independent checker in tests/support — never with the code under test.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "formats/dtype.h"
#include "formats/synth.h"
#include "support/st_checker.h"
#include "vector/vector.h"

namespace fs = std::filesystem;
using nlohmann::json;
using rvtest::CheckedFile;

namespace {

rv::vec::Log vt_quiet() {
  return [](const std::string&) {};
}

rv::SynthOptions small(rv::DType dt, bool tied = false) {
  rv::SynthOptions o;
  o.layers = 2;
  o.hidden = 32;
  o.heads = 4;
  o.kv_heads = 2;
  o.intermediate = 48;
  o.vocab = 64;
  o.dtype = dt;
  o.tied = tied;
  o.seed = 11;
  return o;
}

// SFT, GRPO (= SFT + small delta) and an instruct model of the same lineage.
struct Trio {
  std::string dir, sft, grpo, inst;
};

Trio make_trio(rv::DType dt, bool tied = false, int vocab = 64) {
  Trio t;
  t.dir = rvtest::temp_dir("vec");
  auto o = small(dt, tied);
  o.vocab = vocab;
  t.sft = t.dir + "/sft";
  rv::synth_model(o, t.sft, false);
  o.delta_scale = 0.002f;
  o.delta_seed = 1;
  t.grpo = t.dir + "/grpo";
  rv::synth_model(o, t.grpo, false);
  o.delta_seed = 2;
  o.delta_scale = 0.004f;
  t.inst = t.dir + "/inst";
  rv::synth_model(o, t.inst, false);
  return t;
}

uint32_t vt_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

TEST(Extract, IsElementwiseDifferenceInF32) {
  for (auto dt : {rv::DType::BF16, rv::DType::F32, rv::DType::F16}) {
    Trio t = make_trio(dt);
    std::string v = t.dir + "/v.safetensors";
    auto r = rv::vec::extract(t.sft, t.grpo, v, {}, vt_quiet());
    CheckedFile a = rvtest::read_model_checked(t.sft), b = rvtest::read_model_checked(t.grpo);
    CheckedFile vf = rvtest::read_model_checked(v);
    EXPECT_EQ(r.tensors, a.tensors.size());
    ASSERT_EQ(vf.tensors.size(), a.tensors.size());
    EXPECT_EQ(vf.metadata["format"], "pt");
    EXPECT_EQ(vf.metadata["reasonvec.kind"], "reasoning-vector");
    EXPECT_EQ(vf.metadata["reasonvec.architecture"], "Qwen2ForCausalLM");
    for (auto& [name, tv] : vf.tensors) {
      EXPECT_EQ(tv.dtype, "F32");
      EXPECT_EQ(tv.shape, a.tensors[name].shape);
      auto x = a.tensors[name].as_f32(), y = b.tensors[name].as_f32(), d = tv.as_f32();
      for (size_t i = 0; i < d.size(); ++i)
        ASSERT_EQ(vt_bits(d[i]), vt_bits(y[i] - x[i])) << name << i;
    }
  }
}

TEST(Extract, Bf16OutputRoundsOnce) {
  Trio t = make_trio(rv::DType::BF16);
  rv::vec::ExtractOptions o;
  o.dtype = rv::DType::BF16;
  std::string v = t.dir + "/v16.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, o, vt_quiet());
  CheckedFile a = rvtest::read_model_checked(t.sft), b = rvtest::read_model_checked(t.grpo);
  for (auto& [name, tv] : rvtest::read_model_checked(v).tensors) {
    auto x = a.tensors[name].as_f32(), y = b.tensors[name].as_f32(), d = tv.as_f32();
    for (size_t i = 0; i < d.size(); ++i)
      ASSERT_EQ(d[i], rv::bf16_to_f32(rv::f32_to_bf16(y[i] - x[i])));
  }
}

TEST(Extract, IncludeExcludeAndOnlyInOneModel) {
  Trio t = make_trio(rv::DType::F32);
  rv::vec::ExtractOptions o;
  o.include = "layers\\.1\\.";
  o.exclude = "norm";
  std::string v = t.dir + "/v.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, o, vt_quiet());
  for (auto& [name, tv] : rvtest::read_model_checked(v).tensors) {
    EXPECT_NE(name.find("layers.1."), std::string::npos) << name;
    EXPECT_EQ(name.find("norm"), std::string::npos) << name;
  }
  // A tied model lacks lm_head: reported and skipped, or an error with strict.
  auto tied = small(rv::DType::F32, true);
  rv::synth_model(tied, t.dir + "/tied", false);
  std::vector<std::string> logs;
  auto r = rv::vec::extract(t.dir + "/tied", t.grpo, t.dir + "/v2.safetensors", {},
                            [&](const std::string& m) { logs.push_back(m); });
  EXPECT_EQ(r.only_in_tuned, std::vector<std::string>{"lm_head.weight"});
  ASSERT_FALSE(logs.empty());
  rv::vec::ExtractOptions strict;
  strict.strict = true;
  EXPECT_THROW(
      rv::vec::extract(t.dir + "/tied", t.grpo, t.dir + "/v3.safetensors", strict, vt_quiet()),
      rv::Error);
  EXPECT_FALSE(fs::exists(t.dir + "/v3.safetensors"));
}

TEST(Apply, AlphaOneOnSftReproducesGrpoBitForBit) {
  for (auto dt : {rv::DType::F32, rv::DType::BF16}) {
    Trio t = make_trio(dt);
    std::string v = t.dir + "/v.safetensors";
    rv::vec::extract(t.sft, t.grpo, v, {}, vt_quiet());
    rv::vec::apply(t.sft, {{v, 1.0}}, t.dir + "/out", {}, vt_quiet());
    CheckedFile g = rvtest::read_model_checked(t.grpo),
                o = rvtest::read_model_checked(t.dir + "/out");
    ASSERT_EQ(o.tensors.size(), g.tensors.size());
    for (auto& [name, tv] : o.tensors) {
      EXPECT_EQ(tv.dtype, g.tensors[name].dtype);
      EXPECT_EQ(tv.bytes, g.tensors[name].bytes) << name;
    }
  }
}

TEST(Apply, Bf16VectorWithinOneUlp) {
  Trio t = make_trio(rv::DType::BF16);
  rv::vec::ExtractOptions eo;
  eo.dtype = rv::DType::BF16;
  std::string v = t.dir + "/v.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, eo, vt_quiet());
  rv::vec::apply(t.sft, {{v, 1.0}}, t.dir + "/out", {}, vt_quiet());
  CheckedFile g = rvtest::read_model_checked(t.grpo),
              o = rvtest::read_model_checked(t.dir + "/out");
  CheckedFile s = rvtest::read_model_checked(t.sft);
  for (auto& [name, tv] : o.tensors) {
    auto want = g.tensors[name].as_f32(), got = tv.as_f32(), base = s.tensors[name].as_f32();
    for (size_t i = 0; i < got.size(); ++i) {
      // Two roundings: the difference to bf16 (half an ulp of |t - b|) and
      // the sum to bf16 (half an ulp of |t|): at most one ulp of the larger.
      double big = std::max(std::fabs(double(want[i])), std::fabs(double(want[i]) - base[i]));
      double ulp = std::ldexp(1.0, std::ilogb(big) - 7);
      ASSERT_LE(std::fabs(double(got[i]) - want[i]), ulp) << name << " " << i;
    }
  }
}

TEST(Apply, MatchesScalarRecomputationWithSeveralVectors) {
  Trio t = make_trio(rv::DType::BF16);
  std::string v1 = t.dir + "/v1.safetensors", v2 = t.dir + "/v2.safetensors";
  rv::vec::extract(t.sft, t.grpo, v1, {}, vt_quiet());
  rv::vec::extract(t.sft, t.inst, v2, {}, vt_quiet());
  rv::vec::apply(t.inst, {{v1, 0.7}, {v2, -1.5}}, t.dir + "/out", {}, vt_quiet());
  CheckedFile base = rvtest::read_model_checked(t.inst),
              o = rvtest::read_model_checked(t.dir + "/out");
  CheckedFile a = rvtest::read_model_checked(v1), b = rvtest::read_model_checked(v2);
  for (auto& [name, tv] : o.tensors) {
    auto th = base.tensors[name].as_f32(), x = a.tensors[name].as_f32(),
         y = b.tensors[name].as_f32();
    auto got = tv.as_f32();
    for (size_t i = 0; i < got.size(); ++i) {
      float acc = th[i];
      acc = acc + 0.7f * x[i];
      acc = acc + -1.5f * y[i];
      ASSERT_EQ(vt_bits(got[i]), vt_bits(rv::bf16_to_f32(rv::f32_to_bf16(acc)))) << name << i;
    }
  }
  // Provenance and the model card.
  EXPECT_NE(o.metadata["reasonvec.vectors"].find("\"alpha\":-1.5"), std::string::npos)
      << o.metadata["reasonvec.vectors"];
  std::ifstream card(t.dir + "/out/README.md");
  std::string text((std::istreambuf_iterator<char>(card)), {});
  EXPECT_NE(text.find("| -1.5 |"), std::string::npos) << text;
  EXPECT_NE(text.find(t.sft), std::string::npos);
  for (auto f : {"config.json", "generation_config.json"})
    EXPECT_TRUE(fs::exists(t.dir + "/out/" + std::string(f))) << f;
}

// Tensors of more than one work tile (1 Mi elements), not a multiple of the
// pieces extract and apply read at a time: every piece, the last partial
// one, and the tensors copied unchanged come out bit for bit.
TEST(Apply, LargeTensorsReadInPiecesBitForBit) {
  rv::SynthOptions o;
  o.layers = 1;
  o.hidden = 1040;
  o.heads = 4;
  o.kv_heads = 2;
  o.intermediate = 1100;
  o.vocab = 1050;  // embed_tokens: 1050 x 1040 = 1092000 elements
  o.dtype = rv::DType::BF16;
  o.seed = 5;
  const std::string d = rvtest::temp_dir("vecbig");
  rv::synth_model(o, d + "/sft", false);
  o.delta_scale = 0.002f;
  o.delta_seed = 1;
  rv::synth_model(o, d + "/grpo", false);
  o.delta_seed = 2;
  rv::synth_model(o, d + "/inst", false);
  CheckedFile sft = rvtest::read_model_checked(d + "/sft"),
              grpo = rvtest::read_model_checked(d + "/grpo");
  CheckedFile inst = rvtest::read_model_checked(d + "/inst");
  ASSERT_GT(sft.tensors["model.embed_tokens.weight"].as_f32().size(), size_t{1} << 20);

  rv::vec::extract(d + "/sft", d + "/grpo", d + "/v.safetensors", {}, vt_quiet());
  rv::vec::ExtractOptions e16;
  e16.dtype = rv::DType::BF16;
  e16.exclude = "norm";
  rv::vec::extract(d + "/sft", d + "/grpo", d + "/v16.safetensors", e16, vt_quiet());
  CheckedFile v = rvtest::read_model_checked(d + "/v.safetensors");
  CheckedFile v16 = rvtest::read_model_checked(d + "/v16.safetensors");
  for (auto& [name, tv] : sft.tensors) {
    auto x = tv.as_f32(), y = grpo.tensors[name].as_f32(), got = v.tensors[name].as_f32();
    ASSERT_EQ(got.size(), x.size()) << name;
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(vt_bits(got[i]), vt_bits(y[i] - x[i])) << name << i;
    if (name.find("norm") != std::string::npos) continue;
    auto got16 = v16.tensors[name].as_f32();
    for (size_t i = 0; i < got16.size(); ++i)
      ASSERT_EQ(vt_bits(got16[i]), vt_bits(rv::bf16_to_f32(rv::f32_to_bf16(y[i] - x[i]))))
          << name << i;
  }

  // f32 vector; bf16 vector without the norms (--partial: those are copied).
  rv::vec::apply(d + "/inst", {{d + "/v.safetensors", 0.7}}, d + "/out", {}, vt_quiet());
  rv::vec::ApplyOptions partial;
  partial.partial = true;
  rv::vec::apply(d + "/inst", {{d + "/v16.safetensors", -1.5}}, d + "/out16", partial, vt_quiet());
  CheckedFile out = rvtest::read_model_checked(d + "/out"),
              out16 = rvtest::read_model_checked(d + "/out16");
  for (auto& [name, tv] : inst.tensors) {
    auto th = tv.as_f32(), got = out.tensors[name].as_f32(), dv = v.tensors[name].as_f32();
    for (size_t i = 0; i < got.size(); ++i) {
      const float acc = th[i] + 0.7f * dv[i];
      ASSERT_EQ(vt_bits(got[i]), vt_bits(rv::bf16_to_f32(rv::f32_to_bf16(acc)))) << name << i;
    }
    if (name.find("norm") != std::string::npos) {
      EXPECT_EQ(out16.tensors[name].bytes, tv.bytes) << name;
      continue;
    }
    auto got16 = out16.tensors[name].as_f32(), dv16 = v16.tensors[name].as_f32();
    for (size_t i = 0; i < got16.size(); ++i) {
      const float acc = th[i] + -1.5f * dv16[i];
      ASSERT_EQ(vt_bits(got16[i]), vt_bits(rv::bf16_to_f32(rv::f32_to_bf16(acc)))) << name << i;
    }
  }

  // Two vectors: the generic path, in pieces of its own.
  rv::vec::apply(d + "/inst", {{d + "/v.safetensors", 0.7}, {d + "/v16.safetensors", -1.5}},
                 d + "/out2", partial, vt_quiet());
  CheckedFile out2 = rvtest::read_model_checked(d + "/out2");
  for (auto& [name, tv] : inst.tensors) {
    const bool both = name.find("norm") == std::string::npos;
    auto th = tv.as_f32(), got = out2.tensors[name].as_f32(), dv = v.tensors[name].as_f32();
    auto dv16 = both ? v16.tensors[name].as_f32() : std::vector<float>{};
    for (size_t i = 0; i < got.size(); ++i) {
      float acc = th[i];
      acc = acc + 0.7f * dv[i];
      if (both) acc = acc + -1.5f * dv16[i];
      ASSERT_EQ(vt_bits(got[i]), vt_bits(rv::bf16_to_f32(rv::f32_to_bf16(acc)))) << name << i;
    }
  }
}

TEST(Apply, AlphaZeroIsIdentityAndPlusMinusRoundTrips) {
  Trio t = make_trio(rv::DType::BF16);
  std::string v = t.dir + "/v.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, {}, vt_quiet());
  rv::vec::apply(t.inst, {{v, 0.0}}, t.dir + "/zero", {}, vt_quiet());
  CheckedFile inst = rvtest::read_model_checked(t.inst),
              z = rvtest::read_model_checked(t.dir + "/zero");
  for (auto& [name, tv] : z.tensors) EXPECT_EQ(tv.bytes, inst.tensors[name].bytes) << name;
  rv::vec::ApplyOptions f32;
  f32.dtype = rv::DType::F32;
  rv::vec::apply(t.inst, {{v, 1.0}}, t.dir + "/plus", f32, vt_quiet());
  rv::vec::apply(t.dir + "/plus", {{v, -1.0}}, t.dir + "/back", f32, vt_quiet());
  CheckedFile back = rvtest::read_model_checked(t.dir + "/back");
  for (auto& [name, tv] : back.tensors) {
    auto want = inst.tensors[name].as_f32(), got = tv.as_f32();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], std::fabs(want[i]) * 1e-6 + 1e-9) << name;
  }
  std::ifstream cfg(t.dir + "/plus/config.json");
  EXPECT_EQ(json::parse(cfg)["torch_dtype"], "float32");
}

TEST(Apply, ShardedAndUnshardedHoldIdenticalTensors) {
  Trio t = make_trio(rv::DType::BF16);
  std::string v = t.dir + "/v.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, {}, vt_quiet());
  rv::vec::apply(t.inst, {{v, 1.0}}, t.dir + "/one", {}, vt_quiet());
  rv::vec::ApplyOptions o;
  o.shard_size = 20000;
  auto r = rv::vec::apply(t.inst, {{v, 1.0}}, t.dir + "/many", o, vt_quiet());
  EXPECT_GT(r.files.size(), 2u);
  EXPECT_TRUE(fs::exists(t.dir + "/many/model.safetensors.index.json"));
  CheckedFile a = rvtest::read_model_checked(t.dir + "/one"),
              b = rvtest::read_model_checked(t.dir + "/many");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (auto& [name, tv] : a.tensors) EXPECT_EQ(tv.bytes, b.tensors[name].bytes) << name;
  // A sharded vector too.
  rv::vec::ExtractOptions eo;
  eo.shard_size = 30000;
  rv::vec::extract(t.sft, t.grpo, t.dir + "/vs", eo, vt_quiet());
  EXPECT_TRUE(fs::exists(t.dir + "/vs/model.safetensors.index.json"));
  rv::vec::apply(t.inst, {{t.dir + "/vs", 1.0}}, t.dir + "/fromsharded", {}, vt_quiet());
  CheckedFile c = rvtest::read_model_checked(t.dir + "/fromsharded");
  for (auto& [name, tv] : a.tensors) EXPECT_EQ(tv.bytes, c.tensors[name].bytes) << name;
}

TEST(Apply, VocabMismatchPolicies) {
  Trio t = make_trio(rv::DType::F32);
  std::string v = t.dir + "/v.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, {}, vt_quiet());
  auto big = small(rv::DType::F32);
  big.vocab = 80;
  rv::synth_model(big, t.dir + "/big", false);
  try {
    rv::vec::apply(t.dir + "/big", {{v, 1.0}}, t.dir + "/o1", {}, vt_quiet());
    FAIL();
  } catch (const rv::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("vector has 64 vocabulary rows, target " + t.dir + "/big has 80"),
              std::string::npos)
        << m;
  }
  EXPECT_FALSE(fs::exists(t.dir + "/o1"));
  rv::vec::ApplyOptions o;
  o.vocab_mismatch = rv::vec::VocabMismatch::kOverlap;
  rv::vec::apply(t.dir + "/big", {{v, 1.0}}, t.dir + "/o2", o, vt_quiet());
  CheckedFile tb = rvtest::read_model_checked(t.dir + "/big"),
              out = rvtest::read_model_checked(t.dir + "/o2");
  CheckedFile vf = rvtest::read_model_checked(v);
  auto th = tb.tensors["model.embed_tokens.weight"].as_f32();
  auto dv = vf.tensors["model.embed_tokens.weight"].as_f32();
  auto got = out.tensors["model.embed_tokens.weight"].as_f32();
  for (size_t i = 0; i < got.size(); ++i) {
    float want = i < dv.size() ? th[i] + dv[i] : th[i];  // rows >= 64 untouched
    ASSERT_EQ(got[i], want) << i;
  }
  o.vocab_mismatch = rv::vec::VocabMismatch::kSkip;
  rv::vec::apply(t.dir + "/big", {{v, 1.0}}, t.dir + "/o3", o, vt_quiet());
  CheckedFile skip = rvtest::read_model_checked(t.dir + "/o3");
  EXPECT_EQ(skip.tensors["lm_head.weight"].bytes, tb.tensors["lm_head.weight"].bytes);
  EXPECT_NE(skip.tensors["model.norm.weight"].bytes, tb.tensors["model.norm.weight"].bytes);
}

TEST(Apply, TiedEmbeddingsBothDirections) {
  std::string d = rvtest::temp_dir("tied");
  auto o = small(rv::DType::F32, true);
  rv::synth_model(o, d + "/tsft", false);
  o.delta_scale = 0.01f;
  o.delta_seed = 4;
  rv::synth_model(o, d + "/tgrpo", false);
  rv::vec::extract(d + "/tsft", d + "/tgrpo", d + "/vt.safetensors", {}, vt_quiet());
  // Tied vector -> untied target: the embed delta also moves lm_head.
  auto u = small(rv::DType::F32, false);
  rv::synth_model(u, d + "/untied", false);
  rv::vec::apply(d + "/untied", {{d + "/vt.safetensors", 1.0}}, d + "/o1", {}, vt_quiet());
  CheckedFile tgt = rvtest::read_model_checked(d + "/untied"),
              o1 = rvtest::read_model_checked(d + "/o1");
  auto dv = rvtest::read_model_checked(d + "/vt.safetensors")
                .tensors["model.embed_tokens.weight"]
                .as_f32();
  auto head = tgt.tensors["lm_head.weight"].as_f32(), got = o1.tensors["lm_head.weight"].as_f32();
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], head[i] + dv[i]);
  // Untied vector -> tied target: lm_head delta dropped by default, or untied.
  rv::synth_model(u, d + "/usft", false);
  u.delta_scale = 0.01f;
  u.delta_seed = 5;
  rv::synth_model(u, d + "/ugrpo", false);
  rv::vec::extract(d + "/usft", d + "/ugrpo", d + "/vu.safetensors", {}, vt_quiet());
  rv::vec::ApplyResult r =
      rv::vec::apply(d + "/tsft", {{d + "/vu.safetensors", 1.0}}, d + "/o2", {}, vt_quiet());
  CheckedFile o2 = rvtest::read_model_checked(d + "/o2");
  EXPECT_EQ(o2.tensors.count("lm_head.weight"), 0u);
  EXPECT_FALSE(r.notes.empty());
  rv::vec::ApplyOptions ut;
  ut.untie = true;
  rv::vec::apply(d + "/tsft", {{d + "/vu.safetensors", 1.0}}, d + "/o3", ut, vt_quiet());
  CheckedFile o3 = rvtest::read_model_checked(d + "/o3");
  CheckedFile ts = rvtest::read_model_checked(d + "/tsft"),
              vu = rvtest::read_model_checked(d + "/vu.safetensors");
  auto emb = ts.tensors["model.embed_tokens.weight"].as_f32();
  auto de = vu.tensors["model.embed_tokens.weight"].as_f32(),
       dh = vu.tensors["lm_head.weight"].as_f32();
  auto h3 = o3.tensors.at("lm_head.weight").as_f32(),
       e3 = o3.tensors["model.embed_tokens.weight"].as_f32();
  for (size_t i = 0; i < h3.size(); ++i) {
    ASSERT_EQ(e3[i], emb[i] + de[i]);
    float acc = emb[i] + de[i];
    ASSERT_EQ(h3[i], acc + dh[i]);
  }
  std::ifstream cfg(d + "/o3/config.json");
  EXPECT_EQ(json::parse(cfg)["tie_word_embeddings"], false);
}

TEST(Apply, ShapeMismatchAndExistingOutput) {
  Trio t = make_trio(rv::DType::F32);
  std::string v = t.dir + "/v.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, {}, vt_quiet());
  auto other = small(rv::DType::F32);
  other.intermediate = 40;
  rv::synth_model(other, t.dir + "/other", false);
  try {
    rv::vec::apply(t.dir + "/other", {{v, 1.0}}, t.dir + "/o", {}, vt_quiet());
    FAIL();
  } catch (const rv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has shape [32, 48] but the target's is [32, 40]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(t.dir + "/o"));
  fs::create_directory(t.dir + "/exists");
  EXPECT_THROW(rv::vec::apply(t.inst, {{v, 1.0}}, t.dir + "/exists", {}, vt_quiet()), rv::Error);
  rv::vec::ApplyOptions force;
  force.force = true;
  rv::vec::apply(t.inst, {{v, 1.0}}, t.dir + "/exists", force, vt_quiet());
  EXPECT_TRUE(fs::exists(t.dir + "/exists/model.safetensors"));
  // No temporary directories left behind by the failed attempts.
  for (auto& e : fs::directory_iterator(t.dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);
}

TEST(Inspect, NormsAndCountsMatchScalarRecomputation) {
  Trio t = make_trio(rv::DType::BF16);
  std::string v = t.dir + "/v.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, {}, vt_quiet());
  auto r = rv::vec::inspect(v, t.sft);
  CheckedFile vf = rvtest::read_model_checked(v), sf = rvtest::read_model_checked(t.sft);
  double total = 0, total_ref = 0;
  std::map<int, double> layer;
  for (auto& [name, st] : r.tensors) {
    auto x = vf.tensors[name].as_f32(), th = sf.tensors[name].as_f32();
    double s = 0, sr = 0, mx = 0;
    uint64_t zeros = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      s += double(x[i]) * x[i];
      sr += double(th[i]) * th[i];
      mx = std::max(mx, double(std::fabs(x[i])));
      zeros += x[i] == 0;
    }
    EXPECT_NEAR(st.l2(), std::sqrt(s), 1e-12 * std::sqrt(s) + 1e-300) << name;
    EXPECT_NEAR(st.rel(), std::sqrt(s / sr), 1e-9) << name;
    EXPECT_EQ(st.max_abs, mx);
    EXPECT_EQ(st.zeros, zeros);
    EXPECT_EQ(st.numel, x.size());
    total += s;
    total_ref += sr;
    size_t p = name.find("layers.");
    if (p != std::string::npos) layer[std::stoi(name.substr(p + 7))] += s;
  }
  EXPECT_NEAR(r.total.l2(), std::sqrt(total), 1e-9 * std::sqrt(total));
  EXPECT_NEAR(r.total.rel(), std::sqrt(total / total_ref), 1e-9);
  ASSERT_EQ(r.layers.size(), 2u);
  EXPECT_NEAR(r.layers[1].sum_sq, layer[1], 1e-9 * layer[1]);
  auto j = r.to_json();
  EXPECT_EQ(j["tensors"].size(), r.tensors.size());
  EXPECT_EQ(j["metadata"]["reasonvec.kind"], "reasoning-vector");
}

TEST(Inspect, CountsNonFinite) {
  std::string d = rvtest::temp_dir("nan");
  {
    rv::SafetensorsWriter w(d, {{"x", rv::DType::F32, {5}}}, {});
    float v[5] = {NAN, INFINITY, -INFINITY, 0.0f, 2.0f};
    w.write(0, 0, v, sizeof v);
    w.finish();
  }
  auto r = rv::vec::inspect(d + "/model.safetensors", "");
  EXPECT_EQ(r.total.nans, 1u);
  EXPECT_EQ(r.total.infs, 2u);
  EXPECT_EQ(r.total.zeros, 1u);
  EXPECT_EQ(r.total.l2(), 2.0);
}

TEST(Compare, CosineAndNormRatio) {
  Trio t = make_trio(rv::DType::F32);
  std::string v1 = t.dir + "/v1.safetensors", v2 = t.dir + "/v2.safetensors";
  rv::vec::extract(t.sft, t.grpo, v1, {}, vt_quiet());
  rv::vec::extract(t.sft, t.inst, v2, {}, vt_quiet());
  auto self = rv::vec::compare(v1, v1);
  EXPECT_NEAR(self.total.cosine(), 1.0, 1e-12);
  EXPECT_NEAR(self.total.norm_ratio(), 1.0, 1e-12);
  auto r = rv::vec::compare(v1, v2);
  CheckedFile a = rvtest::read_model_checked(v1), b = rvtest::read_model_checked(v2);
  double dot = 0, aa = 0, bb = 0;
  for (auto& [name, ta] : a.tensors) {
    auto x = ta.as_f32(), y = b.tensors[name].as_f32();
    for (size_t i = 0; i < x.size(); ++i)
      dot += double(x[i]) * y[i], aa += double(x[i]) * x[i], bb += double(y[i]) * y[i];
  }
  EXPECT_NEAR(r.total.cosine(), dot / std::sqrt(aa * bb), 1e-9);
  EXPECT_NEAR(r.total.norm_ratio(), std::sqrt(aa / bb), 1e-9);
  // Independent noise vectors are nearly orthogonal; GRPO delta used half the
  // instruct delta's scale.
  EXPECT_LT(std::fabs(r.total.cosine()), 0.2);
  EXPECT_NEAR(r.total.norm_ratio(), 0.5, 0.1);
}

TEST(Check, VerdictsAndLineage) {
  Trio t = make_trio(rv::DType::BF16);
  std::string v = t.dir + "/v.safetensors";
  rv::vec::extract(t.sft, t.grpo, v, {}, vt_quiet());
  rv::vec::CheckOptions co;
  co.base = t.sft;
  auto ok = rv::vec::check(t.inst, v, co);
  EXPECT_EQ(ok.verdict, rv::vec::CheckResult::Verdict::kCompatible) << ok.to_json().dump();
  EXPECT_GT(ok.lineage_global, 0.0);
  EXPECT_LT(ok.lineage_global, 0.5);
  // A model from another initialisation (different seed): same shapes, no lineage.
  auto stranger = small(rv::DType::BF16);
  stranger.seed = 99;
  rv::synth_model(stranger, t.dir + "/stranger", false);
  auto warn = rv::vec::check(t.dir + "/stranger", v, co);
  EXPECT_EQ(warn.verdict, rv::vec::CheckResult::Verdict::kWarnings);
  EXPECT_GT(warn.lineage_global, 1.0);  // ~sqrt(2) for independent draws
  // Different shapes: incompatible.
  auto other = small(rv::DType::BF16);
  other.hidden = 48;
  other.heads = 4;
  rv::synth_model(other, t.dir + "/other", false);
  auto bad = rv::vec::check(t.dir + "/other", v, {});
  EXPECT_EQ(bad.verdict, rv::vec::CheckResult::Verdict::kIncompatible);
  EXPECT_FALSE(bad.errors.empty());
}
