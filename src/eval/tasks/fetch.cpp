#include "eval/tasks/fetch.h"

#include <httplib.h>

#include <fstream>

#include "common/error.h"
#include "common/file.h"
#include "common/hash.h"

namespace rv::eval {

namespace fs = std::filesystem;

std::string DataFile::url() const {
  return "https://raw.githubusercontent.com/" + repo + "/" + commit + "/" + repo_path;
}

const std::vector<DataFile>& known_data_files() {
  // Generated from ../shared/data/SOURCES.md and ../shared/data/math/SOURCES.md
  // (tests check it stays in sync).
  static const std::vector<DataFile> files = {
      {"gsm8k/test.jsonl", "openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c",
       "grade_school_math/data/test.jsonl",
       "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"},
      {"gsm8k/train.jsonl", "openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c",
       "grade_school_math/data/train.jsonl",
       "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465"},
      {"humaneval/HumanEval.jsonl.gz", "openai/human-eval",
       "6d43fb980f9fee3c892a914eda09951f772ad10d", "data/HumanEval.jsonl.gz",
       "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"},
      {"bbh/tasks/boolean_expressions.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/boolean_expressions.json",
       "ea6c754ec005e2d3f2d085d349a740f593b5764f32ea4638ffed4cfc0061b12a"},
      {"bbh/tasks/causal_judgement.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/causal_judgement.json",
       "6e8bca44dd402008ed41c07a3d0a1d5e7b03db7001a7e002fcdf4c60985ea081"},
      {"bbh/tasks/date_understanding.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/date_understanding.json",
       "0148d4ac5fca05b2f82373e5fef7208e15363b9c6079493034d77b3dab496bf5"},
      {"bbh/tasks/disambiguation_qa.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/disambiguation_qa.json",
       "cf06df9ebf911b883671cb1b35d3fbd1a1c306b19b9e9a012407e596c85fe8c6"},
      {"bbh/tasks/dyck_languages.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/dyck_languages.json",
       "3f9badedf15c2be1ce53d94fdf016299bb30ba231ef087ab9f51a7ed6d0bdc25"},
      {"bbh/tasks/formal_fallacies.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/formal_fallacies.json",
       "4c1adb664821157faade1d4153685403afcc02648f3c180a608a18f17f589629"},
      {"bbh/tasks/geometric_shapes.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/geometric_shapes.json",
       "07be68a124420caa2ebc0b2c858ad79fc55c5c8806170e496e1e17ebfb11f31c"},
      {"bbh/tasks/hyperbaton.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/hyperbaton.json",
       "b6d7f55c75f5d02f2987a4f3123802dfa093872089a56a334144aae8a7264fdc"},
      {"bbh/tasks/logical_deduction_five_objects.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/logical_deduction_five_objects.json",
       "d2df31394b903b7f0e085d42a69572a092987856eac076799017d70ef266fa8f"},
      {"bbh/tasks/logical_deduction_seven_objects.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/logical_deduction_seven_objects.json",
       "2896c7e3482eea318dd37bcc370d24ec3cc91e8374c1784287b5dbd38a529e33"},
      {"bbh/tasks/logical_deduction_three_objects.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/logical_deduction_three_objects.json",
       "e590fae72e3a6041fbd23bd8ff6b74baf44ca563f6ba40a041c55e7b867c1681"},
      {"bbh/tasks/movie_recommendation.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/movie_recommendation.json",
       "a8b53a87ee21a865b7248e694f388a9b8f7cf6b839b11d44796a2dd3fc088983"},
      {"bbh/tasks/multistep_arithmetic_two.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/multistep_arithmetic_two.json",
       "c9d5a6433c9b78256422a15c78463949c8bec8d85607aa28b52d7234ad4a8595"},
      {"bbh/tasks/navigate.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/navigate.json",
       "b7944dfd3c81da5c4815bd75b00d6fa3c64140823498e78ed496f4c3d36f7f0d"},
      {"bbh/tasks/object_counting.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/object_counting.json",
       "8acef14dbbdd40d2326ef7755750b6b5fe919fef06276af1bab3f1c297f022ff"},
      {"bbh/tasks/penguins_in_a_table.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/penguins_in_a_table.json",
       "bb87ee449698eee51215e025a453b1bcb2f5e6589c2063b2c79e68b8f0655228"},
      {"bbh/tasks/reasoning_about_colored_objects.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/reasoning_about_colored_objects.json",
       "0a8850cf95166020fce7a78244026ceedd7ea839302471512b4f8744e85a6a49"},
      {"bbh/tasks/ruin_names.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/ruin_names.json",
       "b6f723aef2bafdd4c7bfc3c7e0329c7e8a8279391a609969c8ed76c9319f5f7f"},
      {"bbh/tasks/salient_translation_error_detection.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/salient_translation_error_detection.json",
       "becf3eb8dd53c821a555ecd5c1334ecd93eb25f980e63be963c518e7138de5da"},
      {"bbh/tasks/snarks.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/snarks.json",
       "54a0661fe2de06167645a4965e6bcf963c4ba307e76262a7c750998b0e3d0d0e"},
      {"bbh/tasks/sports_understanding.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/sports_understanding.json",
       "63ca262858f6176864515cd8cf53cdaa40839ebecc155b726d77930855d167bf"},
      {"bbh/tasks/temporal_sequences.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/temporal_sequences.json",
       "92a1189faaa84aacc4c405aaa13f13f48c2992eb884772eedb622505252baef5"},
      {"bbh/tasks/tracking_shuffled_objects_five_objects.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "bbh/tracking_shuffled_objects_five_objects.json",
       "2063a46a4fb484236ed4310523606543a3e1dd4a4dc34eda65d407910ece25a5"},
      {"bbh/tasks/tracking_shuffled_objects_seven_objects.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "bbh/tracking_shuffled_objects_seven_objects.json",
       "b59fd05b850c37cf57cb514ae1e6975c00b1638ade2291722056b2af3c54084d"},
      {"bbh/tasks/tracking_shuffled_objects_three_objects.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "bbh/tracking_shuffled_objects_three_objects.json",
       "546cc7bf10c6a01a6a4c17ae28a4966485f21f29fd5d111f37858ec78e354f6b"},
      {"bbh/tasks/web_of_lies.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/web_of_lies.json",
       "3e60323f8514a107fdb4edf35f8832a9171c5a09c0eaa47823559de905e8ab8b"},
      {"bbh/tasks/word_sorting.json", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "bbh/word_sorting.json",
       "2a6132d2c99f00d0d2eb1113ac6b4a918bd969d863c48749210d969713db8d43"},
      {"bbh/cot-prompts/boolean_expressions.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/boolean_expressions.txt",
       "685affba97425cdf3549d5d313ba876caed2fa7c8a4cf1ea7549faf22179609d"},
      {"bbh/cot-prompts/causal_judgement.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/causal_judgement.txt",
       "14377e36cccb084b7d0fe73988d08696f7675d712b02d3ae1f5f7f12c77028ea"},
      {"bbh/cot-prompts/date_understanding.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/date_understanding.txt",
       "a0a13c392f689a1828f5f6ffb9dee3d44483794490da5d92f0e2a723787b1cfb"},
      {"bbh/cot-prompts/disambiguation_qa.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/disambiguation_qa.txt",
       "794fd259297972a4c963a5d13a84dc221edde460de27fa5d8fd64299a2001597"},
      {"bbh/cot-prompts/dyck_languages.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/dyck_languages.txt",
       "b0836603007ec659ed685458647fb6d7543543304e7aca909b995d0c3aff22b2"},
      {"bbh/cot-prompts/formal_fallacies.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/formal_fallacies.txt",
       "10c06cc362520e9b8dddfc4861e263ff668d228a52d958dcc69f09f1d224935a"},
      {"bbh/cot-prompts/geometric_shapes.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/geometric_shapes.txt",
       "f36d9893507eb518d84f388fb677dc0226c74a98873700de0b556548d65d3f76"},
      {"bbh/cot-prompts/hyperbaton.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/hyperbaton.txt",
       "19898af91c35cb26bbdf5fdb6f6fb17e138677250332e2994005625ffb50b261"},
      {"bbh/cot-prompts/logical_deduction_five_objects.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/logical_deduction_five_objects.txt",
       "4ed65246c0c1c4b0b4053d784181892b842bce19cf4358c976f34b1a434ef034"},
      {"bbh/cot-prompts/logical_deduction_seven_objects.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "cot-prompts/logical_deduction_seven_objects.txt",
       "4ed65246c0c1c4b0b4053d784181892b842bce19cf4358c976f34b1a434ef034"},
      {"bbh/cot-prompts/logical_deduction_three_objects.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "cot-prompts/logical_deduction_three_objects.txt",
       "4ed65246c0c1c4b0b4053d784181892b842bce19cf4358c976f34b1a434ef034"},
      {"bbh/cot-prompts/movie_recommendation.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/movie_recommendation.txt",
       "cdf765634713b057091d541b4773dd2c998f81447b0bd8564ae70be4cdf3f5d0"},
      {"bbh/cot-prompts/multistep_arithmetic_two.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/multistep_arithmetic_two.txt",
       "a546e0b7cde09037bc144ae5c32c9cf78dafdfac929ae76e2051b2dd8f3671ce"},
      {"bbh/cot-prompts/navigate.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/navigate.txt",
       "dc2fd733f1867b8c79685f15b83746064534a94bf73468341c2a9dd335be22fc"},
      {"bbh/cot-prompts/object_counting.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/object_counting.txt",
       "e51ffc03fd713a13a379a6c938a523dfc1c2f384f2a8447bd7a12d4458f18833"},
      {"bbh/cot-prompts/penguins_in_a_table.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/penguins_in_a_table.txt",
       "33be137e76c2a6af0bbacd17a8e7a92801886c0202a45e35ea9c2a88c1f26d51"},
      {"bbh/cot-prompts/reasoning_about_colored_objects.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "cot-prompts/reasoning_about_colored_objects.txt",
       "e4ea02d05b13e8ed9ccc3b0d878bc4df4c5a6fb76c65d39d48d6244f7ff0b9d5"},
      {"bbh/cot-prompts/ruin_names.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/ruin_names.txt",
       "731446c6c66bb5258677af1417b599a6a5539be6d74a5afc02cf7a716444ea54"},
      {"bbh/cot-prompts/salient_translation_error_detection.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "cot-prompts/salient_translation_error_detection.txt",
       "2c8367f75092202cc507fdbfaaf037b1c1eed38e91289084439738367f0785f7"},
      {"bbh/cot-prompts/snarks.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/snarks.txt",
       "35084a2a0b86bc4008ab206b838c0b97dd425897dd72198137c3cefc499c0960"},
      {"bbh/cot-prompts/sports_understanding.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/sports_understanding.txt",
       "2058a9bed717a6edb8ca2f815e88851436a4ee14c8b0d504ccf464865c6d0295"},
      {"bbh/cot-prompts/temporal_sequences.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/temporal_sequences.txt",
       "3e7ebf1e20abe3e219dc6514dcb7474d82db1b2c66acc733cd30af2e9e0b64b0"},
      {"bbh/cot-prompts/tracking_shuffled_objects_five_objects.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "cot-prompts/tracking_shuffled_objects_five_objects.txt",
       "2ef54cb2a72052adc3484a76209cb6a6535f194d677e79bcec2e2e71cf3768af"},
      {"bbh/cot-prompts/tracking_shuffled_objects_seven_objects.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "cot-prompts/tracking_shuffled_objects_seven_objects.txt",
       "2ef54cb2a72052adc3484a76209cb6a6535f194d677e79bcec2e2e71cf3768af"},
      {"bbh/cot-prompts/tracking_shuffled_objects_three_objects.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d",
       "cot-prompts/tracking_shuffled_objects_three_objects.txt",
       "2ef54cb2a72052adc3484a76209cb6a6535f194d677e79bcec2e2e71cf3768af"},
      {"bbh/cot-prompts/web_of_lies.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/web_of_lies.txt",
       "c8025ca65ab7f0897c243504c863bda043d04b6e873777536743e94023c929d0"},
      {"bbh/cot-prompts/word_sorting.txt", "suzgunmirac/BIG-Bench-Hard",
       "9ee07bd481feebf959a6b59d61ea57bdcf30964d", "cot-prompts/word_sorting.txt",
       "a2cdbcfe23abaa97b9787f7c03dbf49b1cfd0ff9e63197b7884bb5cd5a096ca6"},
      {"sciq/sciq_test.json", "SirAlchemist1/edge-slm-ace",
       "306655bd82a9144c604eb6ee26f340208a294172", "data/tasks/sciq_test.json",
       "88d899373003c94291078fb55a699f9ea86dc87f7874a958525cf29e8d7587d3"},
      {"sciq/sciq_val.json", "SirAlchemist1/edge-slm-ace",
       "306655bd82a9144c604eb6ee26f340208a294172", "data/tasks/sciq_val.json",
       "e0b4178a4892300c9040c4b79496889b9f3c0c1f545f87f7c8feb570afee5842"},
      {"gsm-plus/gsmplus_testmini.jsonl", "qtli/GSM-Plus",
       "3474129ec12fcd3e8ac08cb037aca1928efca98c", "dataset/gsmplus_testmini.jsonl",
       "6653b4b941956da12ba0af2eae660800db13a901123553b163b77be2d20eb7d5"},
      {"gsm-symbolic/GSM_p2.jsonl", "apple/ml-gsm-symbolic",
       "b6a1625025fc857300203bac9f617e5d8ec99f65", "generated_data/GSM_p2.jsonl",
       "f7d6701619f824f4fedd0a914b1cfbc0fd31f61617887aa7fe318d018dda3f29"},
      // Competition math (../shared/data/math/SOURCES.md, which records sizes
      // too). aime25's commit is only on that repository's PR #1 head; raw
      // URLs by commit id serve it all the same.
      {"math/math500/test.jsonl", "wulei20/AML_HW4_Infer",
       "dd28cd1718e003a1290d3b1c02764702c2b1f8aa", "data/math500/test1.jsonl",
       "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132", 446564},
      {"math/aime24/test.jsonl", "QwenLM/Qwen2.5-Math", "a45202bd16f1ec06f433442dc1152d0074773465",
       "evaluation/data/aime24/test.jsonl",
       "af2b8bd2aa911b6333ad0df32f3ca05c7ae8ed10f1731f4372c8ae26990bf7ac", 156944},
      {"math/aime25/test.jsonl", "Zhuofeng-Li/math-evaluation-harness",
       "a0448031ca940fa85ebc55a461a047874ea5ac5f", "data/aime25/test.jsonl",
       "5ee6e9fb9b8c0408c8e3591709b6927063abf73ed238c029167a7eff7376cca0", 15472},
      {"math/amc23/test.jsonl", "QwenLM/Qwen2.5-Math", "a45202bd16f1ec06f433442dc1152d0074773465",
       "evaluation/data/amc23/test.jsonl",
       "43707e1ca784602d8479de24ee8ce36609dbebc46dd152b0b12a46611aa898a4", 27631},
      {"math/minerva_math/test.jsonl", "QwenLM/Qwen2.5-Math",
       "a45202bd16f1ec06f433442dc1152d0074773465", "evaluation/data/minerva_math/test.jsonl",
       "0e656b430d3a0a1dab6aa853f453ba3805e28e2cabe4fc72486a897cc09d8ba2", 247267},
      {"math/olympiadbench/test.jsonl", "QwenLM/Qwen2.5-Math",
       "a45202bd16f1ec06f433442dc1152d0074773465", "evaluation/data/olympiadbench/test.jsonl",
       "bb8c1e38a16ea9eacb77530315a674d883f267fbff79183effc53681b4fcc416", 1493870},
  };
  return files;
}

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string(), "cannot open: " + errno_text(errno));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw Error(path.string(), "read error");
  return h.hex();
}

std::vector<FileStatus> check_data(const fs::path& dir, bool hash) {
  std::vector<FileStatus> out;
  for (const auto& f : known_data_files()) {
    FileStatus s;
    s.file = &f;
    fs::path p = dir / f.path;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) {
      s.state = FileState::kMissing;
    } else {
      s.size = fs::file_size(p, ec);
      if (f.size != 0 && s.size != f.size) {
        s.state = FileState::kCorrupt;
      } else if (hash) {
        s.actual_sha256 = sha256_file(p);
        s.state = s.actual_sha256 == f.sha256 ? FileState::kOk : FileState::kCorrupt;
      } else {
        s.state = FileState::kUnchecked;
      }
    }
    out.push_back(s);
  }
  return out;
}

int fetch_data(const FetchOptions& opt, const std::function<void(const std::string&)>& log) {
  int downloaded = 0;
  httplib::Client cli(opt.base_url);
  cli.set_follow_location(true);
  cli.set_connection_timeout(30, 0);
  cli.set_read_timeout(120, 0);
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
  cli.enable_server_certificate_verification(true);
  if (fs::exists("/etc/ssl/certs/ca-certificates.crt"))
    cli.set_ca_cert_path("/etc/ssl/certs/ca-certificates.crt");
#endif
  for (const auto& f : known_data_files()) {
    if (!opt.only.empty()) {
      bool match = false;
      for (const auto& p : opt.only) match = match || f.path.rfind(p, 0) == 0;
      if (!match) continue;
    }
    fs::path dest = opt.dir / f.path;
    std::error_code ec;
    if (!opt.force && fs::is_regular_file(dest, ec) && sha256_file(dest) == f.sha256) {
      if (log) log("ok        " + f.path);
      continue;
    }
    check_interrupted();
    fs::create_directories(dest.parent_path(), ec);
    if (ec) throw Error(dest.parent_path().string(), "cannot create directory: " + ec.message());
    const std::string url_path = "/" + f.repo + "/" + f.commit + "/" + f.repo_path;
    const std::string url = opt.base_url + url_path;
    AtomicOutput out(dest, AtomicOutput::Kind::kFile, /*force=*/true);
    {
      FileWriter w(out.path());
      Sha256 h;
      auto res = cli.Get(url_path, [&](const char* data, size_t n) {
        w.write(data, n);
        h.update(data, n);
        return !rv::interrupted();
      });
      if (!res) throw Error(url, "download failed: " + httplib::to_string(res.error()));
      if (res->status != 200)
        throw Error(url, "download failed: HTTP " + std::to_string(res->status));
      w.close();
      std::string got = h.hex();
      if (got != f.sha256)
        throw Error(url, "SHA-256 mismatch: expected " + f.sha256 + ", got " + got +
                             " (download discarded)");
    }
    out.commit();
    ++downloaded;
    if (log) log("fetched   " + f.path);
  }
  return downloaded;
}

}  // namespace rv::eval
