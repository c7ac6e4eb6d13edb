// config.json: the input is the file. An accepted config is then used as the loaders use it: the
// block's tensor list and byte size, and (for a plausible head_dim) the rotary frequencies.
#include "core/error.h"
#include "fuzz_util.h"
#include "model/block_specs.h"
#include "model/config.h"

using namespace ar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fuzz::scratch_dir() / "config.json";
  fuzz::write_bytes(path, fuzz::as_view(data, size));
  AR_FUZZ_EXPECT_ERRORS({
    const ModelConfig c = load_model_config(path);
    (void)block_tensor_specs(c, 0);
    (void)block_tensor_specs(c, c.num_hidden_layers - 1);
    (void)block_f32_bytes(c);
    if (c.head_dim <= (1 << 16)) (void)rope_inv_freq(c);
  });
  return 0;
}
