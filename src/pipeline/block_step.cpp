#include "pipeline/block_step.h"

#include "core/comm.h"
#include "core/interrupt.h"
#include "core/log.h"
#include "quant/gguf_blocks.h"
#include "quant/importance.h"
#include "quant/opt_rtn.h"
#include "quant/rtn.h"
#include "tune/signround.h"

namespace ar {

BlockResult signround_step(BlockWeights& w, CalibStream& cs, const StepContext& ctx, BlockReport& report) {
  const int64_t l = w.layer, n = cs.samples();
  BlockTuner tuner(std::move(w), ctx.cfg, ctx.schemes, ctx.T, ctx.setup.tune_opts);  // bf16-exact weights held as bf16
  ActivationStore& in = cs.tune_inputs();
  TuneSamples ts;
  ts.n = n;
  ts.n_total = ctx.setup.samples_total;
  ts.comm = ctx.setup.comm;
  ts.first_partition = ctx.setup.comm->rank();
  if (!ctx.stream_targets) {
    // Targets = block_fp(X), which are also the next block's X. In RAM, X is overwritten in place
    // when the tuning inputs are Xq; on disk a new generation is written so the checkpoint of the
    // previous block stays intact.
    const bool in_place = !cs.on_disk() && ctx.setup.with_xq;
    if (!in_place) cs.set_next_x(cs.new_store("X", l + 1));
    ActivationStore& targets = in_place ? cs.x() : cs.next_x();
    for (int64_t s = 0; s < n; ++s) {
      throw_if_interrupted("during a calibration pass");
      cs.x().read(s, cs.a());
      tuner.fp_forward(cs.b(), cs.a());
      targets.write(s, cs.b());
    }
    ctx.mem_log(cat("block ", l, " targets"));
    ts.fetch = [&](int64_t idx, float* x, float* t) {
      in.read(idx, x);
      targets.read(idx, t);
    };
    ts.view = [&](int64_t idx, const float** x, const float** t) {
      *x = in.resident(idx);
      *t = targets.resident(idx);
      return *x && *t;
    };
    if (in_place) cs.keep_x_as_next();
  } else {
    ts.fp_inputs = true;
    ts.fetch = [&](int64_t idx, float* x, float* xfp) {
      in.read(idx, x);
      cs.x().read(idx, xfp);
    };
  }
  BlockTuneResult tr = tuner.tune(ts);
  report.loss_before = tr.loss_iter0;
  report.loss_after = tr.best_loss;
  report.best_iter = tr.best_iter;
  report.expert_groups = int(tr.groups.size());
  ctx.mem_log(cat("block ", l, " tuned"));
  if (ctx.stream_targets && !ctx.last) {  // the next block's X = block_fp(X)
    if (cs.on_disk()) cs.set_next_x(cs.new_store("X", l + 1));
    ActivationStore& out = cs.on_disk() ? cs.next_x() : cs.x();
    for (int64_t s = 0; s < n; ++s) {
      throw_if_interrupted("during a calibration pass");
      cs.x().read(s, cs.a());
      tuner.fp_forward(cs.b(), cs.a());
      out.write(s, cs.b());
    }
    if (!cs.on_disk()) cs.keep_x_as_next();
  }
  w = tuner.release_weights();
  BlockResult r;
  r.layer = l;
  r.tuned = true;
  for (int i = 0; i < block_linear_count(w); ++i) {
    LinearWeights& lw = *block_linears(w, i);
    if (!tr.gguf[size_t(i)].empty()) {  // tuned under its GGUF format: what the file stores
      LinearResult& lr = r.linears[lw.name];
      lr.gguf_type = ctx.schemes[size_t(i)].gguf;
      lr.gguf = std::move(tr.gguf[size_t(i)]);
      continue;
    }
    if (tr.q[size_t(i)].out == 0) continue;
    r.linears[lw.name].q = std::move(tr.q[size_t(i)]);
  }
  // The quantized path continues with the dequantized weights (step 5: Xq <- block_q(Xq)).
  apply_result(w, r);
  return r;
}

BlockResult rtn_step(const BlockWeights& w, CalibStream* cs, const StepContext& ctx) {
  const int64_t l = w.layer;
  BlockResult r;
  r.layer = l;
  std::optional<ImportanceSums> imp_sums;
  if (ctx.setup.use_imp) {
    // Per-input-channel mean squared activation of each linear, accumulated while the samples
    // pass through the block; the outputs are the next block's inputs. A data-parallel run
    // passes the running sum from rank to rank (see ImportanceSums).
    Comm& comm = *ctx.setup.comm;
    std::vector<int64_t> widths(static_cast<size_t>(block_linear_count(w)));
    for (int i = 0; i < block_linear_count(w); ++i) widths[size_t(i)] = block_linears(w, i)->in;
    imp_sums.emplace(std::move(widths), comm.size() > 1);
    auto observe = [&](int li, const float* xin, int64_t rows, int64_t K) { imp_sums->add_sample(li, xin, rows, K); };
    if (cs->on_disk() && !ctx.last) cs->set_next_x(cs->new_store("X", l + 1));
    cs->pass(w, cs->x(), cs->has_next_x() ? cs->next_x() : cs->x(), ctx.precision, observe, !ctx.last);
    if (!cs->has_next_x()) cs->keep_x_as_next();
    imp_sums->finish(comm);
  }
  const double tokens = double(ctx.setup.samples_total * ctx.T);
  const std::vector<float> global_amax =
      block_nvfp4_global_amax(w, ctx.schemes, ctx.setup.tune_opts.nvfp4_fused_global_scale);
  for (int i = 0; i < block_linear_count(w); ++i) {
    const LinearWeights& lw = *block_linears(w, i);
    const QuantScheme& s = ctx.schemes[size_t(i)];
    std::vector<float> imp;
    if (imp_sums) imp = imp_sums->mean(i, tokens);
    std::optional<QuantizedWeight> q;
    if (s.quantized() && ctx.setup.integer_formats)  // GGUF outputs quantize for themselves
      // Floating-point formats: plain RTN (optimized RTN searches integer grids only).
      q = ctx.disable_opt_rtn || s.is_fp()
              ? quantize_rtn(lw.w.as<float>(), lw.out, lw.in, s, nullptr, nullptr, nullptr, lw.name + ".weight",
                             global_amax[size_t(i)])
              : quantize_opt_rtn(lw.w.as<float>(), lw.out, lw.in, s, imp.empty() ? nullptr : imp.data());
    if (!q && imp.empty()) continue;
    LinearResult& lr = r.linears[lw.name];
    lr.q = std::move(q);
    lr.importance = std::move(imp);
  }
  return r;
}

void apply_result(BlockWeights& w, const BlockResult& r) {
  if (!r.tuned) return;
  for (int i = 0; i < block_linear_count(w); ++i) {
    LinearWeights& lw = *block_linears(w, i);
    const LinearResult* lr = r.find(lw.name);
    if (!lr) continue;
    if (!lr->gguf.empty()) gguf_dequantize_tensor(lr->gguf_type, lr->gguf.data(), lw.out, lw.in, lw.w.as<float>());
    else if (lr->q) lr->q->dequantize(lw.w.as<float>());
  }
}

}  // namespace ar
