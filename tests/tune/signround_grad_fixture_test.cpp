// SignRound gradients against an independent implementation (fixtures/gradients/, see the fixtures
// README): per file, one real decoder block with the file's v / min_scale / max_scale; our
// fake-quantized weights, block output, loss and gradients w.r.t. every v, min_scale, max_scale.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/safetensors.h"
#include "kernels/mse_loss.h"
#include "model/block_grad.h"
#include "model/config.h"
#include "model/weights.h"
#include "quant/fake_quant_grad.h"
#include "quant/rtn.h"
#include "support/fixtures.h"

namespace ar {
namespace {

// Acceptance of issue 6: gradients within 1e-3 relative norm, >= 99.5 % sign agreement (rounding
// ties may flip single elements between implementations, so nothing element-wise).
constexpr double kGradRelNorm = 1e-3;
constexpr double kSignAgree = 0.995;
// Block output and loss: both sides are fp32 with different summation orders.
constexpr double kOutRelNorm = 1e-4;

std::vector<float> read_all(const SafetensorsReader& r, const std::string& name) {
  const TensorInfo& t = r.require(name);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  r.read_f32(t, v.data());
  return v;
}

double rel_norm(const std::vector<float>& got, const std::vector<float>& ref) {
  double e = 0, n = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    e += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
    n += double(ref[i]) * ref[i];
  }
  return n > 0 ? std::sqrt(e / n) : std::sqrt(e);
}

// Share of elements whose signs agree (zero counts as its own sign).
double sign_agreement(const std::vector<float>& got, const std::vector<float>& ref) {
  size_t same = 0;
  for (size_t i = 0; i < ref.size(); ++i) same += (got[i] > 0) == (ref[i] > 0) && (got[i] < 0) == (ref[i] < 0);
  return ref.empty() ? 1.0 : double(same) / double(ref.size());
}

void check_file(const std::string& file) {
  AR_REQUIRE_FIXTURE(path, "gradients/" + file + ".safetensors");
  const SafetensorsReader fx = SafetensorsReader::open(path);
  const auto& meta = fx.metadata();
  const std::string model = meta.at("model");
  const int64_t layer = std::stoll(meta.at("block"));
  QuantScheme qs;
  qs.bits = std::stoi(meta.at("bits"));
  qs.group_size = std::stoll(meta.at("group_size"));
  qs.sym = meta.at("sym") == "true";
  AR_REQUIRE_FIXTURE(model_dir, "models/" + model + "/hf");
  const ModelConfig c = load_model_config(model_dir);
  const SafetensorsReader st = SafetensorsReader::open(model_dir);
  BlockWeights b = load_block(st, c, layer);

  const TensorInfo& xi = fx.require("x");
  ASSERT_EQ(xi.shape.size(), 3u);
  const int64_t B = xi.shape[0], T = xi.shape[1], C = c.hidden_size;
  ASSERT_EQ(xi.shape[2], C);
  const std::vector<float> x = read_all(fx, "x"), target = read_all(fx, "target"), y_ref = read_all(fx, "y");

  // Fake-quantize every linear with the file's parameters, mapping v [out, n_groups, G] (last
  // group zero-padded) to our (out, in).
  const std::string prefix = block_prefix(layer);
  std::vector<std::vector<float>> wq(kDenseLinears), v(kDenseLinears), mn(kDenseLinears), mx(kDenseLinears);
  std::vector<std::string> names(kDenseLinears);
  BlockLinearWeights w(kDenseLinears);
  for (int i = 0; i < kDenseLinears; ++i) {
    const LinearWeights& l = *block_linears(b, i);
    names[size_t(i)] = l.name.substr(prefix.size());
    const std::string& nm = names[size_t(i)];
    const int64_t G = effective_group_size(qs, l.in), ng = num_groups(qs, l.in);
    const std::vector<float> vp = read_all(fx, nm + ".v");
    ASSERT_EQ(int64_t(vp.size()), l.out * ng * G) << nm;
    v[size_t(i)].resize(size_t(l.out * l.in));
    for (int64_t o = 0; o < l.out; ++o)
      for (int64_t k = 0; k < l.in; ++k) v[size_t(i)][size_t(o * l.in + k)] = vp[size_t(o * ng * G + k)];
    mn[size_t(i)] = read_all(fx, nm + ".min_scale");
    mx[size_t(i)] = read_all(fx, nm + ".max_scale");
    ASSERT_EQ(int64_t(mn[size_t(i)].size()), l.out * ng) << nm;
    wq[size_t(i)].resize(size_t(l.out * l.in));
    fake_quant_forward(wq[size_t(i)].data(), l.w.as<float>(), l.out, l.in, qs, v[size_t(i)].data(),
                       mn[size_t(i)].data(), mx[size_t(i)].data());
    w[i] = wq[size_t(i)].data();

    const std::vector<float> wdq_ref = read_all(fx, nm + ".w_dq");
    size_t diff = 0;
    for (size_t k = 0; k < wdq_ref.size(); ++k) diff += wq[size_t(i)][k] != wdq_ref[k];
    EXPECT_EQ(diff, 0u) << nm << ": fake-quantized weights differ in " << diff << " of " << wdq_ref.size();
    const QuantizedWeight q = quantize_rtn(l.w.as<float>(), l.out, l.in, qs, v[size_t(i)].data(),
                                           mn[size_t(i)].data(), mx[size_t(i)].data());
    const std::vector<float> scale_ref = read_all(fx, nm + ".scale");
    size_t sdiff = 0, zdiff = 0;
    for (size_t g = 0; g < scale_ref.size(); ++g) sdiff += f16_to_f32(q.scales[g]) != scale_ref[g];
    if (!qs.sym) {
      const std::vector<float> zero_ref = read_all(fx, nm + ".zero");
      for (size_t g = 0; g < zero_ref.size(); ++g) zdiff += float(q.zeros[g]) != zero_ref[g];
    }
    EXPECT_EQ(sdiff, 0u) << nm << ": scales differ";
    EXPECT_EQ(zdiff, 0u) << nm << ": zero points differ";
  }

  // Forward and backward sample by sample, gradients accumulated: loss = mean over all B*T*C.
  const RopeTables rope = make_rope_tables(c, T);
  BlockGradScratch s(c, T);
  std::vector<std::vector<float>> dw(kDenseLinears);
  BlockLinearGrads dwp(kDenseLinears);
  for (int i = 0; i < kDenseLinears; ++i) {
    dw[size_t(i)].assign(wq[size_t(i)].size(), 0.f);
    dwp[i] = dw[size_t(i)].data();
  }
  std::vector<float> y(x.size()), dy(static_cast<size_t>(T * C));
  double loss = 0;
  for (int64_t bi = 0; bi < B; ++bi) {
    const size_t off = size_t(bi * T * C);
    block_forward_train(y.data() + off, s, x.data() + off, b, w, c, rope, Precision::F32);
    loss += mse_loss_forward(y.data() + off, target.data() + off, T * C) / double(B);
    mse_loss_backward(dy.data(), y.data() + off, target.data() + off, T * C, 1.0f / float(B));
    block_backward(nullptr, dwp, s, dy.data(), x.data() + off, b, w, c, rope, Precision::F32);
  }
  const double loss_ref = read_all(fx, "loss")[0];
  const double y_rel = rel_norm(y, y_ref);
  std::printf("[%s] y rel norm %.2e, loss %.6g (ref %.6g, rel %.2e)\n", file.c_str(), y_rel, loss, loss_ref,
              std::fabs(loss - loss_ref) / loss_ref);
  EXPECT_LT(y_rel, kOutRelNorm);
  EXPECT_NEAR(loss, loss_ref, 1e-4 * loss_ref);

  for (int i = 0; i < kDenseLinears; ++i) {
    const LinearWeights& l = *block_linears(b, i);
    const std::string& nm = names[size_t(i)];
    const int64_t G = effective_group_size(qs, l.in), ng = num_groups(qs, l.in);
    std::vector<float> gv(v[size_t(i)].size(), 0.f), gmn(mn[size_t(i)].size(), 0.f), gmx(gmn.size(), 0.f);
    fake_quant_backward(gv.data(), gmn.data(), gmx.data(), dw[size_t(i)].data(), l.w.as<float>(), l.out, l.in, qs,
                        v[size_t(i)].data(), mn[size_t(i)].data(), mx[size_t(i)].data());
    // The reference's padded tail of grad_v must be zero; compare the real positions.
    const std::vector<float> gvp = read_all(fx, nm + ".grad_v");
    std::vector<float> gv_ref(gv.size());
    for (int64_t o = 0; o < l.out; ++o)
      for (int64_t k = 0; k < ng * G; ++k) {
        const float r = gvp[size_t(o * ng * G + k)];
        if (k < l.in)
          gv_ref[size_t(o * l.in + k)] = r;
        else
          EXPECT_EQ(r, 0.f) << nm << ": padded grad_v";
      }
    const std::vector<float> gmn_ref = read_all(fx, nm + ".grad_min_scale"), gmx_ref = read_all(fx, nm + ".grad_max_scale");
    struct Row {
      const char* what;
      const std::vector<float>& got;
      const std::vector<float>& ref;
    } rows[] = {{"v", gv, gv_ref}, {"min_scale", gmn, gmn_ref}, {"max_scale", gmx, gmx_ref}};
    for (const Row& r : rows) {
      const double rn = rel_norm(r.got, r.ref), sa = sign_agreement(r.got, r.ref);
      std::printf("[%s] %-16s grad %-9s rel norm %.2e  sign agreement %.4f%%\n", file.c_str(), nm.c_str(), r.what,
                  rn, 100 * sa);
      EXPECT_LT(rn, kGradRelNorm) << nm << " grad " << r.what;
      EXPECT_GE(sa, kSignAgree) << nm << " grad " << r.what;
    }
  }
}

TEST(SignRoundGradFixture, Stories260KBlock0W4G32Sym) { check_file("stories260K-block0-w4g32-sym"); }
TEST(SignRoundGradFixture, Stories260KBlock2W2G32Asym) { check_file("stories260K-block2-w2g32-asym"); }
TEST(SignRoundGradFixture, Qwen3StudentBlock1W4G128Sym) { check_file("qwen3-student-block1-w4g128-sym"); }
TEST(SignRoundGradFixture, Qwen3StudentBlock0W3G64Asym) { check_file("qwen3-student-block0-w3g64-asym"); }

}  // namespace
}  // namespace ar
