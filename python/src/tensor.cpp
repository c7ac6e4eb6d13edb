// One weight matrix quantized as a block's linears are (SPEC §2): plain RTN or the optimized-RTN
// scale search, returning the neutral layout every exporter reads -- unsigned codes (out, in),
// fp16 scale bits and unsigned zero points (out, n_groups), W' = scale * (code - zero).
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <cstring>

#include "bindings.h"
#include "core/error.h"
#include "quant/opt_rtn.h"
#include "quant/rtn.h"

namespace ar::py {

namespace {

using Matrix = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
template <typename T>
using Out2d = nb::ndarray<nb::numpy, T, nb::ndim<2>>;

// A numpy array that owns a copy of `v` (rows, cols).
template <typename T>
Out2d<T> to_numpy(const std::vector<T>& v, size_t rows, size_t cols) {
  T* data = new T[v.size()];
  std::memcpy(data, v.data(), v.size() * sizeof(T));
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return Out2d<T>(data, {rows, cols}, owner);
}

nb::tuple quantize_tensor(Matrix w, int bits, int64_t group_size, bool sym, bool optimized,
                          std::optional<nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>> importance) {
  if (bits < 2 || bits > 8) AR_THROW("bits ", bits, ": supported are 2 to 8");
  if (group_size != -1 && group_size <= 0) AR_THROW("group_size ", group_size, ": use -1 or a positive size");
  const int64_t out = int64_t(w.shape(0)), in = int64_t(w.shape(1));
  if (out == 0 || in == 0) AR_THROW("weight of shape (", out, ", ", in, "): nothing to quantize");
  const float* imp = nullptr;
  if (importance) {
    if (!optimized) AR_THROW("importance applies to the optimized search only (optimized=True)");
    if (int64_t(importance->shape(0)) != in)
      AR_THROW("importance has ", importance->shape(0), " values for ", in, " input columns");
    imp = importance->data();
  }
  const QuantScheme s{.bits = bits, .group_size = group_size, .sym = sym};
  QuantizedWeight q;
  {
    nb::gil_scoped_release nogil;
    q = optimized ? quantize_opt_rtn(w.data(), out, in, s, imp) : quantize_rtn(w.data(), out, in, s);
  }
  const size_t o = size_t(out), g = size_t(q.n_groups);
  return nb::make_tuple(to_numpy(q.codes, o, size_t(in)), to_numpy(q.scales, o, g), to_numpy(q.zeros, o, g));
}

}  // namespace

void bind_tensor(nb::module_& m) {
  m.def("quantize_tensor", &quantize_tensor, nb::arg("weight"), nb::arg("bits") = 4, nb::arg("group_size") = 128,
        nb::arg("sym") = true, nb::arg("optimized") = false, nb::arg("importance").none() = nb::none(),
        "(codes uint8 (out, in), scales as fp16 bits uint16 (out, n_groups), zeros uint8 (out, n_groups)) of a "
        "float32 C-contiguous (out, in) matrix");
}

}  // namespace ar::py
