// check_finite_weights: what a corrupted checkpoint's weights look like to the loader.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "model/weights.h"

namespace ar {
namespace {

std::string error_of(const std::vector<float>& w) {
  try {
    check_finite_weights(w.data(), w.size(), "dir/model.safetensors", "model.layers.0.mlp.up_proj.weight");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CheckFiniteWeights, AcceptsEveryFiniteValue) {
  const std::vector<float> w = {0.0f, -0.0f, 1.0f, -FLT_MAX, FLT_MAX, FLT_MIN, std::numeric_limits<float>::denorm_min(),
                                -std::numeric_limits<float>::denorm_min(), 65504.0f, -3.0e38f};
  EXPECT_EQ(error_of(w), "");
  EXPECT_EQ(error_of({}), "");
}

TEST(CheckFiniteWeights, NamesFileTensorAndFirstBadElement) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    std::vector<float> w(1000, 0.5f);
    w[617] = bad;
    w[900] = bad;
    const std::string e = error_of(w);
    EXPECT_NE(e.find("dir/model.safetensors"), std::string::npos) << e;
    EXPECT_NE(e.find("'model.layers.0.mlp.up_proj.weight'"), std::string::npos) << e;
    EXPECT_NE(e.find("non-finite"), std::string::npos) << e;
    EXPECT_NE(e.find("element 617;"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace ar
