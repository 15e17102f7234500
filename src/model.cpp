// Model creation and backend choice, Context, forward() dispatch, Plan::explain.
#include <memory>
#include <string>

#include "backend.h"
#include "detail.h"
#include "nvtx.h"

namespace culstm {
namespace {

using detail::error;
using detail::str;

Status check_options(const ModelOptions& options) {
  const int b = static_cast<int>(options.backend);
  if (b < 0 || b > 3) {
    return error(StatusCode::kInvalidArgument,
                 "options.backend: expected auto(0), reference(1), cuda(2) or cudnn(3), got ", b);
  }
  if (options.max_batch < 1 || options.max_batch > (std::int64_t{1} << 24)) {
    return error(StatusCode::kInvalidArgument, "options.max_batch: expected a value in [1, 16777216], got ",
                 options.max_batch);
  }
  if (options.max_seq_len < 1 || options.max_seq_len > (std::int64_t{1} << 24)) {
    return error(StatusCode::kInvalidArgument, "options.max_seq_len: expected a value in [1, 16777216], got ",
                 options.max_seq_len);
  }
  const int algo = static_cast<int>(options.cudnn_algo);
  if (algo < 0 || algo > 4) {
    return error(StatusCode::kInvalidArgument,
                 "options.cudnn_algo: expected auto(0), standard(1), persist_static(2), persist_static_small_h(3) or "
                 "persist_dynamic(4), got ",
                 algo);
  }
  const int engine = static_cast<int>(options.cuda_engine);
  if (engine < 0 || engine > 2) {
    return error(StatusCode::kInvalidArgument,
                 "options.cuda_engine: expected auto(0), stepwise(1) or persistent(2), got ", engine);
  }
  if (options.device < 0) {
    return error(StatusCode::kInvalidArgument, "options.device: expected a CUDA device ordinal >= 0, got ",
                 options.device);
  }
  return Status::Ok();
}

Status make_backend(Backend backend, const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                    std::unique_ptr<BackendImpl>* out) {
  switch (backend) {
    case Backend::kReference: return make_reference_backend(spec, weights, options, out);
    case Backend::kCuda: return make_cuda_backend(spec, weights, options, out);
    case Backend::kCudnn: return make_cudnn_backend(spec, weights, options, out);
    case Backend::kAuto: break;
  }
  return error(StatusCode::kInternal, "make_backend called with backend auto");
}

}  // namespace

const char* backend_name(Backend b) noexcept {
  switch (b) {
    case Backend::kAuto: return "auto";
    case Backend::kReference: return "reference";
    case Backend::kCuda: return "cuda";
    case Backend::kCudnn: return "cudnn";
  }
  return "unknown";
}

std::string Plan::explain() const {
  std::string out = str("backend: ", backend_name(backend_), "\n", summary_, "\n");
  for (const PlanStep& s : steps_) {
    const std::string slice =
        s.workspace_bytes ? str(" workspace=[", s.workspace_offset, ", +", s.workspace_bytes, ")") : std::string();
    out += str("  layer ", s.layer, " direction ", s.direction, s.reversed ? " (reverse)" : " (forward)",
               ": engine=", s.engine, slice, ": ", s.reason, "\n");
  }
  return out;
}

Status Model::create(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                     std::shared_ptr<const Model>* out) {
  try {
    return create_model(spec, weights, options, out);
  } catch (const std::exception& e) {  // std::bad_alloc while copying weights must not cross the API
    return error(StatusCode::kInternal, "Model::create: unexpected exception: ", e.what());
  }
}

Status Model::create_model(const LstmSpec& spec, const Weights& weights, const ModelOptions& options,
                           std::shared_ptr<const Model>* out) {
  if (out == nullptr) return error(StatusCode::kNullPointer, "out: the Model output pointer is null");
  CULSTM_RETURN_IF_ERROR(spec.validate());
  CULSTM_RETURN_IF_ERROR(check_options(options));
  CULSTM_RETURN_IF_ERROR(weights.check_against(spec));

  std::unique_ptr<BackendImpl> impl;
  if (options.backend == Backend::kAuto) {
    // GPU first; the reference serves every spec, so auto always ends with a backend.
    Status cuda = make_cuda_backend(spec, weights, options, &impl);
    if (!cuda.ok()) {
      if (cuda.code() != StatusCode::kBackendUnavailable && cuda.code() != StatusCode::kNotImplemented &&
          cuda.code() != StatusCode::kNotSupported) {
        return cuda;  // a real failure (CUDA error, out of memory) is reported, not hidden by a fallback
      }
      CULSTM_RETURN_IF_ERROR(make_reference_backend(spec, weights, options, &impl));
    }
  } else {
    CULSTM_RETURN_IF_ERROR(make_backend(options.backend, spec, weights, options, &impl));
  }
  std::shared_ptr<Model> model(new Model());
  model->spec_ = spec;
  model->options_ = options;
  model->impl_ = std::move(impl);
  *out = std::move(model);
  return Status::Ok();
}

Model::~Model() = default;

const LstmSpec& Model::spec() const noexcept {
  return spec_;
}
const ModelOptions& Model::options() const noexcept {
  return options_;
}
Backend Model::backend() const noexcept {
  return impl_->kind();
}
const Plan& Model::plan() const noexcept {
  return impl_->plan();
}

Status Model::workspace_size(std::int64_t batch, std::int64_t seq_len, std::size_t* bytes) const {
  if (bytes == nullptr) return error(StatusCode::kNullPointer, "bytes: the output pointer is null");
  CULSTM_RETURN_IF_ERROR(check_model_limits(options_, batch, seq_len));
  *bytes = impl_->workspace_size(batch, seq_len);
  return Status::Ok();
}

Status Context::create(const Model& model, std::unique_ptr<Context>* out) {
  if (out == nullptr) return error(StatusCode::kNullPointer, "out: the Context output pointer is null");
  try {
    std::unique_ptr<ContextImpl> impl;
    CULSTM_RETURN_IF_ERROR(model.impl().create_context(model.options().device, &impl));
    std::unique_ptr<Context> ctx(new Context());
    ctx->impl_ = std::move(impl);
    *out = std::move(ctx);
    return Status::Ok();
  } catch (const std::exception& e) {
    return error(StatusCode::kInternal, "Context::create: unexpected exception: ", e.what());
  }
}

Context::~Context() = default;
Backend Context::backend() const noexcept {
  return impl_->backend();
}
int Context::device() const noexcept {
  return impl_->device();
}

Status forward(Context& ctx, const Model& model, const ForwardArgs& args, Stream stream) {
  const nvtx::Range range("culstm/forward");
  const BackendImpl& impl = model.impl();
  if (ctx.backend() != impl.kind()) {
    return error(StatusCode::kInvalidArgument, "ctx: expected a Context for backend ", backend_name(impl.kind()),
                 ", got one for ", backend_name(ctx.backend()));
  }
  if (impl.data_memory() == MemoryKind::kDevice && ctx.device() != model.options().device) {
    return error(StatusCode::kInvalidArgument, "ctx: expected a Context on device ", model.options().device,
                 ", got device ", ctx.device());
  }
  ForwardShape shape;
  CULSTM_RETURN_IF_ERROR(validate_forward_args(model.spec(), model.options(), impl.data_memory(), impl, args, &shape));
  try {
    return impl.forward(ctx.impl(), args, shape, stream);
  } catch (const std::exception& e) {  // nothing may cross the API; std::bad_alloc from a backend lands here
    return error(StatusCode::kInternal, "forward: unexpected exception: ", e.what());
  }
}

const char* version() noexcept {
  return CULSTM_VERSION_STRING;
}

}  // namespace culstm
