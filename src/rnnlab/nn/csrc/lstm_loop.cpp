// The explicit LSTM (plain or peephole) over a whole sequence, forward and backward, in one C++ call each.
//
// Built on first use by rnnlab.nn.compiled (torch.utils.cpp_extension); the equations, shapes and
// saved buffers are documented there. Why C++: at batch 1 a step is a (1, H) x (H, 4H) product and
// ~5H scalars of gate math; from Python each of the ~20 ATen calls per step costs more in dispatch
// than it computes. Here a step is one call of the BLAS for the product, then one plain loop over
// contiguous memory for the gates, which the compiler vectorises.
#include <torch/extension.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

// The BLAS PyTorch is linked with (MKL or OpenBLAS export the Fortran interface from libtorch_cpu). Called
// directly because a step's product is tiny at batch 1: through ATen, view creation and dispatch cost
// about as much again as the product. Where no such symbol exists the import fails and rnnlab falls
// back to its Python loop.
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
}

namespace {

// Row-major c (rows, cols) = beta c + a (rows, inner) @ w (inner, cols). BLAS is column-major, where these
// arrays are the transposes: it computes c^T = w^T a^T.
template <typename T>
void gemm_rows(const T* a, const T* w, T beta, T* c, int64_t rows, int64_t inner, int64_t cols) {
  const int m = static_cast<int>(cols), n = static_cast<int>(rows), k = static_cast<int>(inner);
  const char no = 'N';
  const T one = T(1);
  if constexpr (std::is_same_v<T, float>)
    sgemm_(&no, &no, &m, &n, &k, &one, w, &m, a, &k, &beta, c, &m);
  else
    dgemm_(&no, &no, &m, &n, &k, &one, w, &m, a, &k, &beta, c, &m);
}

// exp(x) by range reduction and a polynomial, written so that the compiler vectorises the gate loop
// (std::exp is one scalar library call per element, most of a batch-1 step). x = n ln2 + r with
// |r| <= ln2/2, exp(r) by its Taylor series to about one ulp (degree 13 in double, 7 in float),
// 2^n built in the exponent bits; x is clamped so that 2^n stays a normal number.
template <typename T>
struct ExpConstants;
template <>
struct ExpConstants<double> {
  using Bits = uint64_t;
  static constexpr double lo = -708.0, hi = 709.0, shifter = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
  static constexpr int degree = 13, mantissa = 52;
  static constexpr Bits bias = 1023;
};
template <>
struct ExpConstants<float> {
  using Bits = uint32_t;
  static constexpr float lo = -87.0f, hi = 88.0f, shifter = 12582912.0f;  // 1.5 * 2^23
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  static constexpr int degree = 7, mantissa = 23;
  static constexpr Bits bias = 127;
};

// sum_{d >= D} r^(d - D) / d! up to the degree, by Horner, unrolled at compile time.
template <typename T, int D>
inline T taylor_exp(T r) {
  constexpr T inv_factorial = [] {
    T f = T(1);
    for (int k = 2; k <= D; ++k) f /= T(k);
    return f;
  }();
  if constexpr (D == ExpConstants<T>::degree)
    return inv_factorial;
  else
    return inv_factorial + r * taylor_exp<T, D + 1>(r);
}

template <typename T>
inline T fast_exp(T x) {
  using C = ExpConstants<T>;
  x = std::min(std::max(x, C::lo), C::hi);  // a NaN passes through (x is the first argument)
  const T k = x * T(1.4426950408889634) + C::shifter;  // round(x / ln2) sits in k's low mantissa bits
  const T n = k - C::shifter;
  const T r = (x - n * C::ln2_hi) - n * C::ln2_lo;
  const T p = taylor_exp<T, 0>(r);  // exp(r)
  const auto scale = (std::bit_cast<typename C::Bits>(k) + C::bias) << C::mantissa;  // 2^n
  return p * std::bit_cast<T>(scale);
}

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

template <typename T>
inline T tanh_(T x) {  // absolute error ~ one ulp of 1 near 0, which the tests' tolerance covers
  return T(1) - T(2) / (T(1) + fast_exp(T(2) * x));
}

// Each sequence's valid steps: lengths[b], or T for all when there are no lengths.
std::vector<int64_t> valid_steps(const c10::optional<at::Tensor>& lengths, int64_t steps, int64_t batch) {
  std::vector<int64_t> valid(batch, steps);
  if (lengths.has_value() && lengths->defined()) {
    auto len = lengths->to(at::kLong).contiguous();
    const int64_t* l = len.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch; ++b) valid[b] = l[b];
  }
  return valid;
}

// One row of one step: z (4H) holds x_proj_t + h_{t-1} W_hh^T on entry and the activations i, f, g, o
// on exit; writes c_t, tanh(c_t), h_t. Plain arrays, no aliasing: the compiler vectorises over j.
template <typename T, bool Peephole>
inline void gates_row(T* __restrict__ z, const T* __restrict__ c_prev, T* __restrict__ c, T* __restrict__ tc,
                      T* __restrict__ h, const T* __restrict__ peep, int64_t hidden) {
  for (int64_t j = 0; j < hidden; ++j) {
    T zi = z[j], zf = z[hidden + j], zo = z[3 * hidden + j];
    if constexpr (Peephole) {
      zi += peep[j] * c_prev[j];
      zf += peep[hidden + j] * c_prev[j];
    }
    const T i = sigmoid(zi), f = sigmoid(zf), g = tanh_(z[2 * hidden + j]);
    const T cn = f * c_prev[j] + i * g;
    if constexpr (Peephole) zo += peep[2 * hidden + j] * cn;  // the output gate peeks at the new cell
    const T o = sigmoid(zo), tcn = tanh_(cn);
    z[j] = i;
    z[hidden + j] = f;
    z[2 * hidden + j] = g;
    z[3 * hidden + j] = o;
    c[j] = cn;
    tc[j] = tcn;
    h[j] = o * tcn;
  }
}

// Compiled for AVX2 and for the baseline; the loader picks what the CPU has (GCC/Clang function
// multi-versioning), so a build cached on one machine still runs on an older one.
#if defined(__x86_64__) && defined(__GNUC__)
#define RNNLAB_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define RNNLAB_CLONES
#endif

template <typename T>
void forward_rows(T* z, const T* c_prev, T* c, T* tc, T* h, const T* peep, int64_t batch, int64_t hidden);

#define RNNLAB_FORWARD_ROWS(T)                                                                                   \
  template <>                                                                                                    \
  RNNLAB_CLONES void forward_rows<T>(T * z, const T* c_prev, T* c, T* tc, T* h, const T* peep, int64_t batch,  \
                                     int64_t hidden) {                                                           \
    for (int64_t b = 0; b < batch; ++b) {                                                                        \
      const int64_t k = b * hidden;                                                                              \
      if (peep)                                                                                                  \
        gates_row<T, true>(z + 4 * k, c_prev + k, c + k, tc + k, h + k, peep, hidden);                          \
      else                                                                                                       \
        gates_row<T, false>(z + 4 * k, c_prev + k, c + k, tc + k, h + k, peep, hidden);                         \
    }                                                                                                            \
  }
RNNLAB_FORWARD_ROWS(float)
RNNLAB_FORWARD_ROWS(double)

template <typename T>
void forward_steps(const T* w_t, const T* peep, T* gates, T* hs, T* cs, T* tau, int64_t steps, int64_t batch,
                   int64_t hidden) {
  const int64_t n = batch * hidden;
  for (int64_t t = 0; t < steps; ++t) {
    T* z = gates + 4 * t * n;  // holds x_proj_t on entry
    gemm_rows<T>(hs + t * n, w_t, T(1), z, batch, hidden, 4 * hidden);  // z += h_{t-1} W_hh^T
    forward_rows<T>(z, cs + t * n, cs + (t + 1) * n, tau + t * n, hs + (t + 1) * n, peep, batch, hidden);
  }
}

// One row of one step backwards: from gh = dL/dh_t and dc = dL/dc_t (updated in place to dL/dc_{t-1}) and
// the saved activations a (4H), c_{t-1}, tanh(c_t), writes dz (4H), the gradient of z = x_proj_t + h_{t-1} W_hh^T.
template <typename T, bool Peephole>
inline void backward_row(const T* __restrict__ a, const T* __restrict__ c_prev, const T* __restrict__ tc,
                         const T* __restrict__ g_out, const T* __restrict__ dh, T* __restrict__ dc,
                         T* __restrict__ dz, const T* __restrict__ peep, int64_t hidden) {
  for (int64_t j = 0; j < hidden; ++j) {
    const T i = a[j], f = a[hidden + j], g = a[2 * hidden + j], o = a[3 * hidden + j];
    const T gh = g_out[j] + dh[j];  // dL/dh_t
    const T dzo = gh * tc[j] * o * (T(1) - o);
    T dchat = dc[j] + gh * o * (T(1) - tc[j] * tc[j]);
    if constexpr (Peephole) dchat += dzo * peep[2 * hidden + j];
    const T dzi = dchat * g * i * (T(1) - i);
    const T dzf = dchat * c_prev[j] * f * (T(1) - f);
    T dcp = dchat * f;
    if constexpr (Peephole) dcp += dzi * peep[j] + dzf * peep[hidden + j];
    dz[j] = dzi;
    dz[hidden + j] = dzf;
    dz[2 * hidden + j] = dchat * i * (T(1) - g * g);
    dz[3 * hidden + j] = dzo;
    dc[j] = dcp;
  }
}

template <typename T>
void backward_rows(const T* a, const T* c_prev, const T* tc, const T* g_out, const T* dh, T* dc, T* dz, const T* peep,
                   int64_t batch, int64_t hidden, const int64_t* valid, int64_t t);

#define RNNLAB_BACKWARD_ROWS(T)                                                                                  \
  template <>                                                                                                    \
  RNNLAB_CLONES void backward_rows<T>(const T* a, const T* c_prev, const T* tc, const T* g_out, const T* dh,    \
                                      T* dc, T* dz, const T* peep, int64_t batch, int64_t hidden,               \
                                      const int64_t* valid, int64_t t) {                                        \
    for (int64_t b = 0; b < batch; ++b) {                                                                        \
      const int64_t k = b * hidden;                                                                              \
      if (t >= valid[b])  /* padding: receives and passes on exactly zero (dc stays 0) */                       \
        std::fill(dz + 4 * k, dz + 4 * k + 4 * hidden, T(0));                                                    \
      else if (peep)                                                                                             \
        backward_row<T, true>(a + 4 * k, c_prev + k, tc + k, g_out + k, dh + k, dc + k, dz + 4 * k, peep, hidden); \
      else                                                                                                       \
        backward_row<T, false>(a + 4 * k, c_prev + k, tc + k, g_out + k, dh + k, dc + k, dz + 4 * k, peep, hidden); \
    }                                                                                                            \
  }
RNNLAB_BACKWARD_ROWS(float)
RNNLAB_BACKWARD_ROWS(double)

template <typename T>
void backward_steps(const T* gates, const T* cs, const T* tau, const T* weight_hh, const T* peep, const T* g_out,
                    const T* g_hn, const T* g_cn, const std::vector<int64_t>& valid, bool has_lengths, T* dz, T* dh,
                    T* dc, int64_t steps, int64_t batch, int64_t hidden) {
  const int64_t n = batch * hidden;
  // Steps where some sequence ends: its final-state gradient enters there (without lengths: dh, dc start with it).
  std::vector<std::vector<int64_t>> ends(has_lengths ? steps : 0);
  for (int64_t b = 0; has_lengths && b < batch; ++b)
    if (valid[b] > 0) ends[valid[b] - 1].push_back(b);
  for (int64_t t = steps - 1; t >= 0; --t) {
    for (size_t e = 0; has_lengths && e < ends[t].size(); ++e) {
      for (int64_t j = ends[t][e] * hidden; j < (ends[t][e] + 1) * hidden; ++j) {
        dh[j] += g_hn[j];
        dc[j] += g_cn[j];
      }
    }
    T* dz_t = dz + 4 * t * n;
    backward_rows<T>(gates + 4 * t * n, cs + t * n, tau + t * n, g_out + t * n, dh, dc, dz_t, peep, batch, hidden,
                     valid.data(), t);
    gemm_rows<T>(dz_t, weight_hh, T(0), dh, batch, 4 * hidden, hidden);  // dL/dh_{t-1} = dz_t W_hh
  }
}

}  // namespace

// xp (T, B, 4H) projected inputs, h0/c0 (B, H), weight_hh (4H, H), peephole (3, H) or None,
// lengths (B,) or None -> [out (T, B, H), h_n, c_n, gates (T, B, 4H), hs (T+1, B, H), cs (T+1, B, H), tau (T, B, H)].
std::vector<at::Tensor> forward(const at::Tensor& xp, const at::Tensor& h0, const at::Tensor& c0,
                                const at::Tensor& weight_hh, const c10::optional<at::Tensor>& peephole,
                                const c10::optional<at::Tensor>& lengths) {
  TORCH_CHECK(xp.device().is_cpu() && xp.dim() == 3 && xp.scalar_type() == weight_hh.scalar_type(),
              "x_proj must be a CPU tensor (T, B, 4H) of weight_hh's dtype");
  const int64_t steps = xp.size(0), batch = xp.size(1), hidden = xp.size(2) / 4;
  auto gates = at::empty(xp.sizes(), xp.options());  // contiguous; each step adds its recurrent product in place
  gates.copy_(xp);
  auto hs = at::empty({steps + 1, batch, hidden}, xp.options());
  auto cs = at::empty({steps + 1, batch, hidden}, xp.options());
  auto tau = at::empty({steps, batch, hidden}, xp.options());
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  const auto w_t = weight_hh.t().contiguous();  // (H, 4H): a plain product is faster at batch 1 than a transposed one
  const auto peep = peephole.has_value() && peephole->defined() ? peephole->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnnlab_lstm_forward", [&] {
    forward_steps<scalar_t>(w_t.data_ptr<scalar_t>(), peep.defined() ? peep.data_ptr<scalar_t>() : nullptr,
                            gates.data_ptr<scalar_t>(), hs.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>(),
                            tau.data_ptr<scalar_t>(), steps, batch, hidden);
  });
  auto out = hs.slice(0, 1).clone();
  at::Tensor h_n, c_n;
  if (lengths.has_value() && lengths->defined()) {
    const auto valid = valid_steps(lengths, steps, batch);
    h_n = at::empty_like(h0);
    c_n = at::empty_like(c0);
    for (int64_t b = 0; b < batch; ++b) {
      h_n[b].copy_(hs[valid[b]][b]);
      c_n[b].copy_(cs[valid[b]][b]);
      if (valid[b] < steps) out.slice(0, valid[b]).select(1, b).zero_();  // zero outputs past the end
    }
  } else {
    h_n = hs[steps].clone();
    c_n = cs[steps].clone();
  }
  return {out, h_n, c_n, gates, hs, cs, tau};
}

// Gradients w.r.t. (xp, h0, c0, weight_hh, peephole) from those of (out, h_n, c_n) and the forward's buffers.
std::vector<at::Tensor> backward(const at::Tensor& g_out_in, const at::Tensor& g_hn_in, const at::Tensor& g_cn_in,
                                 const at::Tensor& gates, const at::Tensor& hs, const at::Tensor& cs,
                                 const at::Tensor& tau, const at::Tensor& weight_hh,
                                 const c10::optional<at::Tensor>& peephole, const c10::optional<at::Tensor>& lengths) {
  const int64_t steps = gates.size(0), batch = gates.size(1), hidden = gates.size(2) / 4;
  const auto g_out = g_out_in.contiguous(), g_hn = g_hn_in.contiguous(), g_cn = g_cn_in.contiguous();
  const bool has_lengths = lengths.has_value() && lengths->defined();
  const auto valid = valid_steps(lengths, steps, batch);
  auto dz = at::empty_like(gates);
  // Without lengths every sequence ends at T: the final-state gradients are the starting ones.
  auto dh = has_lengths ? at::zeros_like(g_hn) : g_hn.clone();
  auto dc = has_lengths ? at::zeros_like(g_cn) : g_cn.clone();
  const auto peep = peephole.has_value() && peephole->defined() ? peephole->contiguous() : at::Tensor();
  const auto w = weight_hh.contiguous();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnlab_lstm_backward", [&] {
    backward_steps<scalar_t>(gates.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>(), tau.data_ptr<scalar_t>(),
                             w.data_ptr<scalar_t>(), peep.defined() ? peep.data_ptr<scalar_t>() : nullptr,
                             g_out.data_ptr<scalar_t>(), g_hn.data_ptr<scalar_t>(), g_cn.data_ptr<scalar_t>(), valid,
                             has_lengths, dz.data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(), dc.data_ptr<scalar_t>(),
                             steps, batch, hidden);
  });
  // All recurrent weight gradients in one product over time: dW_hh = dZ^T H_prev   (4H, H).
  auto d_weight = at::mm(dz.view({steps * batch, 4 * hidden}).t(), hs.slice(0, 0, steps).view({steps * batch, hidden}));
  at::Tensor d_peephole;
  if (peep.defined()) {  // sums over all steps at once: dp_{i,f} = sum dz_{i,f} c_{t-1}, dp_o = sum dz_o c_t
    const auto dzv = dz.view({steps, batch, 4, hidden});
    d_peephole = at::stack({(dzv.select(2, 0) * cs.slice(0, 0, steps)).sum({0, 1}),
                            (dzv.select(2, 1) * cs.slice(0, 0, steps)).sum({0, 1}),
                            (dzv.select(2, 3) * cs.slice(0, 1)).sum({0, 1})});
  }
  return {dz, dh, dc, d_weight, d_peephole};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "explicit LSTM over a sequence: outputs, final state, buffers for backward");
  m.def("backward", &backward, "gradients of the explicit LSTM over a sequence");
}
