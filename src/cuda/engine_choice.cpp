// The cuda backend's engine choice per layer (engine_choice.h, docs/persistent.md). Pure host code.
#include "engine_choice.h"

#include <utility>

#include "detail.h"
#include "persistent_traits.h"

namespace culstm {

const char* cuda_engine_name(CudaEngine e) noexcept {
  switch (e) {
    case CudaEngine::kAuto: return "auto";
    case CudaEngine::kStepwise: return "stepwise";
    case CudaEngine::kPersistent: return "persistent";
  }
  return "unknown";
}

namespace cuda_backend {
namespace {

using detail::str;

// Only one tile is compiled; the traits table documents it per architecture and must agree with it.
constexpr bool traits_match_kernel() {
  for (const kernels::PersistentTraits& t : kernels::kPersistentTraits) {
    if (t.threads != kernels::kPersistentThreads || t.batch_chunk != kernels::kBatchChunk) return false;
  }
  return true;
}
static_assert(traits_match_kernel(), "kernels/persistent_traits.h disagrees with the compiled tile");

std::string kib(std::size_t bytes) {
  return str(static_cast<double>(bytes) / 1024.0, " KiB");
}

// Does the layer fit on chip, and how is it tiled? Fills everything but `why` when it fits; sets `refusal` to the
// reason otherwise. An error only when options.cuda_engine = kPersistent and the occupancy query fails.
Status fit(const LstmSpec& spec, const ModelOptions& options, const PersistentDevice& device, LayerEngine* out,
           std::string* refusal) {
  const int D = spec.num_directions();
  const kernels::PersistentDeviceLimits& lim = device.limits;
  if (!lim.cooperative_launch) {
    *refusal = "the device does not support cooperative launches";
    return Status::Ok();
  }
  if (lim.sm_count < D) {
    *refusal = str("the device has ", lim.sm_count, " SMs, fewer than the ", D, " directions");
    return Status::Ok();
  }
  kernels::LayerDims dims;
  dims.directions = D;
  dims.batch = options.max_batch;
  dims.seq_len = options.max_seq_len;
  dims.hidden = spec.hidden_size;
  dims.recurrent = spec.recurrent_size();
  // One block per SM and direction share: the most blocks, hence the least shared memory per block.
  const kernels::PersistentTiling tiling =
      persistent_tiling(spec.hidden_size, spec.proj_size, lim.sm_count / D);
  const kernels::PersistentSmemLayout smem = persistent_smem_layout(dims, tiling, dtype_size(spec.dtype));
  if (smem.total > lim.max_smem_per_block) {
    *refusal = str("a block of ", tiling.units_per_block, " units would need ", kib(smem.total),
                   " of shared memory at B=", options.max_batch, " (W_hh slice ", kib(smem.h_stage - smem.w_hh),
                   "), the device allows ", kib(lim.max_smem_per_block));
    return Status::Ok();
  }
  int per_sm = 0;
  const Status occupancy = device.blocks_per_sm(smem.total, &per_sm);
  if (!occupancy.ok()) {
    // Asked for explicitly, the engine's failure is the caller's error; otherwise the stepwise engine serves.
    if (options.cuda_engine == CudaEngine::kPersistent) return occupancy;
    *refusal = str("the occupancy query failed: ", occupancy.message());
    return Status::Ok();
  }
  const long long blocks = static_cast<long long>(D) * tiling.blocks_per_direction;
  if (static_cast<long long>(per_sm) * lim.sm_count < blocks) {
    *refusal = str(blocks, " blocks with ", kib(smem.total), " of shared memory each cannot all be resident (", per_sm,
                   " per SM x ", lim.sm_count, " SMs)");
    return Status::Ok();
  }
  out->tiling = tiling;
  out->smem_bytes = smem.total;
  out->blocks_per_sm = per_sm;
  return Status::Ok();
}

}  // namespace

kernels::PersistentTiling persistent_tiling(long long hidden, long long proj, int max_blocks_per_direction) {
  long long blocks = max_blocks_per_direction < 1 ? 1 : max_blocks_per_direction;
  if (blocks > hidden) blocks = hidden;
  kernels::PersistentTiling t;
  t.units_per_block = static_cast<int>((hidden + blocks - 1) / blocks);
  t.blocks_per_direction = static_cast<int>((hidden + t.units_per_block - 1) / t.units_per_block);
  t.proj_per_block = proj > 0 ? static_cast<int>((proj + t.blocks_per_direction - 1) / t.blocks_per_direction) : 0;
  return t;
}

kernels::PersistentSmemLayout persistent_smem_layout(const kernels::LayerDims& dims,
                                                     const kernels::PersistentTiling& tiling, std::size_t value_bytes) {
  const auto align16 = [](std::size_t n) { return (n + 15) / 16 * 16; };
  const std::size_t u = static_cast<std::size_t>(tiling.units_per_block);
  const std::size_t up = static_cast<std::size_t>(tiling.proj_per_block);
  const std::size_t B = static_cast<std::size_t>(dims.batch), H = static_cast<std::size_t>(dims.hidden);
  const std::size_t R = static_cast<std::size_t>(dims.recurrent);
  const bool projecting = dims.recurrent != dims.hidden;
  kernels::PersistentSmemLayout s;
  s.stage_width = projecting && dims.hidden > dims.recurrent ? dims.hidden : dims.recurrent;
  std::size_t cursor = 0;
  const std::size_t rows_hh = static_cast<std::size_t>(kernels::persistent_padded_rows(static_cast<long long>(4 * u)));
  const std::size_t rows_hr = static_cast<std::size_t>(kernels::persistent_padded_rows(static_cast<long long>(up)));
  s.w_hh = cursor;
  cursor += align16(rows_hh * R * value_bytes);
  s.w_hr = cursor;
  cursor += align16(rows_hr * H * value_bytes);
  s.h_stage = cursor;
  cursor += align16(static_cast<std::size_t>(kernels::kBatchChunk) * static_cast<std::size_t>(s.stage_width) * 4);
  s.pre = cursor;
  cursor += align16(4 * u * B * 4);
  s.c = cursor;
  cursor += align16(u * B * 4);
  s.total = cursor;
  return s;
}

Status choose_engines(const LstmSpec& spec, const ModelOptions& options, const PersistentDevice& device,
                      std::vector<LayerEngine>* out) {
  out->clear();
  LayerEngine engine;
  std::string refusal;
  if (options.cuda_engine != CudaEngine::kStepwise) {
    CULSTM_RETURN_IF_ERROR(fit(spec, options, device, &engine, &refusal));
  }
  const bool fits = options.cuda_engine != CudaEngine::kStepwise && refusal.empty();
  const kernels::PersistentTraits* traits = kernels::persistent_traits(device.cc_major, device.cc_minor);
  const bool measured = traits != nullptr && traits->faster_up_to_batch > 0;
  const bool faster = measured && options.max_batch <= traits->faster_up_to_batch;

  if (options.cuda_engine == CudaEngine::kStepwise) {
    engine.why = "stepwise: options.cuda_engine = stepwise";
  } else if (!fits) {
    engine.why = str("stepwise: the persistent engine does not fit: ", refusal);
  } else if (options.cuda_engine == CudaEngine::kPersistent || faster) {
    engine.persistent = true;
    const int D = spec.num_directions();
    engine.why =
        str("persistent: one cooperative launch per layer, ", D, " x ", engine.tiling.blocks_per_direction,
            " blocks of ", kernels::kPersistentThreads, " threads, ", engine.tiling.units_per_block,
            " hidden units (all 4 gates) per block",
            spec.proj_size > 0 ? str(" and ", engine.tiling.proj_per_block, " projection outputs") : std::string(),
            "; W_hh", spec.proj_size > 0 ? " and W_hr" : "", " slices stay in shared memory, ", kib(engine.smem_bytes),
            " per block at B=", options.max_batch, " (", engine.blocks_per_sm, " block(s)/SM fit); ",
            spec.proj_size > 0 ? 2 : 1, " grid sync(s) per step; ",
            options.cuda_engine == CudaEngine::kPersistent
                ? str("options.cuda_engine = persistent",
                      measured ? "" : " (no timing for this architecture yet: kernels/persistent_traits.h)")
                : str("measured faster up to B=", traits->faster_up_to_batch, " (", traits->evidence, ")"));
  } else {
    engine.why = str(
        "stepwise: the persistent engine fits (", kib(engine.smem_bytes), " shared memory per block, ",
        device.limits.sm_count, " SMs) but ",
        measured
            ? str("was measured faster only up to B=", traits->faster_up_to_batch, " < max_batch ", options.max_batch)
            : str("has no timing on sm_", device.cc_major, device.cc_minor, " yet (kernels/persistent_traits.h)"),
        "; options.cuda_engine = persistent runs it");
  }
  if (!engine.persistent) {
    engine.tiling = {};
    engine.smem_bytes = 0;
    engine.blocks_per_sm = 0;
  }
  out->assign(static_cast<std::size_t>(spec.num_layers), engine);
  return Status::Ok();
}

}  // namespace cuda_backend
}  // namespace culstm
