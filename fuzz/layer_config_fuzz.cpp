// --layer_config JSON: the input is the file's text. Accepted rules are resolved against a
// realistic list of layer names.
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "quant/layer_config.h"

using namespace ar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> kNames = {
      "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
      "model.layers.0.self_attn.o_proj", "model.layers.1.mlp.gate_proj",    "model.layers.1.mlp.up_proj",
      "model.layers.11.mlp.down_proj"};
  AR_FUZZ_EXPECT_ERRORS({
    const LayerConfig lc = LayerConfig::parse(std::string(fuzz::as_view(data, size)), QuantScheme{}, "fuzz.json");
    for (const auto& n : kNames) (void)lc.scheme_for(n);
    (void)lc.extra_config(kNames);
    (void)lc.unmatched_rules(kNames);
  });
  return 0;
}
