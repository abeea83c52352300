// Fuzzes the safetensors header parser: any input must either parse into a
// self-consistent header or throw rv::Error — never crash, hang or leak.
#include <cstdint>
#include <cstdlib>

#include "common/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    rv::SafetensorsHeader h = rv::parse_safetensors(data, size, "fuzz");
    uint64_t pos = 0;
    for (const auto& t : h.tensors) {
      if (t.begin != pos || t.end < t.begin) abort();
      pos = t.end;
    }
    if (h.data_start + pos != size) abort();
  } catch (const rv::Error&) {
  }
  return 0;
}
