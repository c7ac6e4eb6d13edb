// GGUF reader: the input is one .gguf file. Accepted files are then exercised as eval uses them:
// every tensor read whole and by rows, metadata rendered, and the model config derived from it.
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/gguf.h"
#include "model/block_specs.h"
#include "model/gguf_config.h"

using namespace ar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::scratch_dir() / "model.gguf";
  fuzz::write_bytes(path, fuzz::as_view(data, size));
  AR_FUZZ_EXPECT_ERRORS({
    const GgufReader r = GgufReader::open(path);
    for (const GgufKV& kv : r.metadata()) (void)kv.value.to_string();
    std::vector<char> raw;
    for (const GgufTensorInfo& t : r.tensors()) {
      raw.resize(t.size_bytes);
      r.read(t, raw.data());
      const int64_t rows = t.n_rows();
      if (rows > 0 && t.row_bytes() <= t.size_bytes) r.read_rows(t, rows - 1, 1, raw.data());
    }
    const ModelConfig c = gguf_model_config(r);
    (void)block_tensor_specs(c, 0);
  });
  return 0;
}
