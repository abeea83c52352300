// The architecture table's tensor-name map, both directions, against names
// written out by hand from llama.cpp's tensor naming (llama-arch.cpp).
#include <gtest/gtest.h>

#include "formats/arch.h"

namespace rv {
namespace {

TEST(Arch, TensorNamesMapBothWays) {
  const std::pair<const char*, const char*> cases[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
      {"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
      {"model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight"},
      {"model.layers.3.self_attn.k_proj.bias", "blk.3.attn_k.bias"},
      {"model.layers.12.self_attn.v_proj.weight", "blk.12.attn_v.weight"},
      {"model.layers.12.self_attn.o_proj.weight", "blk.12.attn_output.weight"},
      {"model.layers.27.self_attn.q_norm.weight", "blk.27.attn_q_norm.weight"},
      {"model.layers.27.self_attn.k_norm.weight", "blk.27.attn_k_norm.weight"},
      {"model.layers.1.post_attention_layernorm.weight", "blk.1.ffn_norm.weight"},
      {"model.layers.1.mlp.gate_proj.weight", "blk.1.ffn_gate.weight"},
      {"model.layers.1.mlp.up_proj.weight", "blk.1.ffn_up.weight"},
      {"model.layers.1.mlp.down_proj.weight", "blk.1.ffn_down.weight"},
  };
  for (const auto& [hf, gguf] : cases) {
    EXPECT_EQ(gguf_tensor_name(hf), gguf) << hf;
    EXPECT_EQ(hf_tensor_name(gguf), hf) << gguf;
  }
  EXPECT_EQ(gguf_tensor_name("model.layers.1.mlp.unknown.weight"), "");
  EXPECT_EQ(hf_tensor_name("blk.1.ffn_unknown.weight"), "");
  EXPECT_EQ(hf_tensor_name("blk.x.attn_q.weight"), "");
}

TEST(Arch, QkPermutationInterleavesTheRotatedHalves) {
  // head_dim 8: GGUF rows (0..7) hold HF rows 0,4,1,5,2,6,3,7; the next head
  // is shifted by 8.
  const int64_t want[] = {0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15};
  for (int64_t r = 0; r < 16; ++r) EXPECT_EQ(gguf_qk_source_row(r, 8), want[r]) << r;
}

}  // namespace
}  // namespace rv
