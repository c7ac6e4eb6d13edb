// Checkpoint files of --resume (src/pipeline/checkpoint.*). Byte 0 even: the rest is the manifest
// (checkpoint.json); odd: a block file, loaded with its own checksum as the expected one so the
// parser behind the checksum is reached.
#include <nlohmann/json.hpp>

#include "core/checksum.h"
#include "core/error.h"
#include "fuzz_util.h"
#include "pipeline/checkpoint.h"

using namespace ar;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view body = fuzz::as_view(data + 1, size - 1);
  const auto& dir = fuzz::scratch_dir();
  if (data[0] % 2 == 0) {
    fuzz::write_bytes(dir / kManifestName, body);
    AR_FUZZ_EXPECT_ERRORS({
      const auto m = read_manifest(dir);
      if (m) {
        check_identity(dir, m->identity, m->identity);  // a run always matches itself
        check_identity(dir, m->identity, nlohmann::json{{"iters", 200}});
      }
    });
  } else {
    const auto file = dir / "block_0.bin";
    fuzz::write_bytes(file, body);
    AR_FUZZ_EXPECT_ERRORS({
      const BlockResult r = load_block_result(file, checksum64(body.data(), body.size()));
      for (const auto& [name, lr] : r.linears)
        if (lr.q && lr.q->out * lr.q->in <= (1 << 16)) {
          std::vector<float> w(size_t(lr.q->out * lr.q->in));
          lr.q->dequantize(w.data());
        }
    });
  }
  return 0;
}
