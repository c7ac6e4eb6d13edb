// safetensors reader: one input = one model.safetensors file, or (parts split by kSplit) an index
// json followed by its shards, written as model-0000i-of-0000N.safetensors. Every tensor the reader
// accepts is then read raw, by rows and as f32 (its sizes were validated against the file).
#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

using namespace ar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_view(data, size));
  fuzz::clear_scratch();
  const auto& dir = fuzz::scratch_dir();
  if (parts.size() == 1) {
    fuzz::write_bytes(dir / "model.safetensors", parts[0]);
  } else {
    fuzz::write_bytes(dir / "model.safetensors.index.json", parts[0]);
    const size_t n = parts.size() - 1;
    for (size_t i = 1; i < parts.size(); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i, n);
      fuzz::write_bytes(dir / name, parts[i]);
    }
  }
  AR_FUZZ_EXPECT_ERRORS({
    const SafetensorsReader r = SafetensorsReader::open(dir);
    std::vector<char> raw;
    std::vector<float> f;
    for (const TensorInfo& t : r.tensors()) {
      raw.resize(t.size_bytes);
      r.read(t, raw.data());
      if (!t.shape.empty() && t.shape[0] > 0) r.read_rows(t, 0, 1, raw.data());
      if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16) {
        f.resize(size_t(t.numel()));
        r.read_f32(t, f.data());
        if (!t.shape.empty() && t.shape[0] > 0) r.read_rows_f32(t, t.shape[0] - 1, 1, f.data());
      }
      (void)r.require(t.name);
    }
  });
  return 0;
}
