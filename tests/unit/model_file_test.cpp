// The public import_model_file (culstm/model_file.h): every convention through one installed entry point.
#include <string>

#include <gtest/gtest.h>

#include "culstm/model_file.h"

namespace culstm {
namespace {

std::string fixture(const std::string& relative) {
  return std::string(CULSTM_SOURCE_DIR) + "/tests/conformance/fixtures/" + relative;
}

TEST(PublicImportModelFile, ReadsKerasSafetensorsWithAutoDetection) {
  LstmSpec spec;
  Weights weights;
  const Status st = import_model_file(fixture("keras/bidirectional.safetensors"), "auto", "", "", &spec, &weights);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(spec.direction, Direction::kBidirectional);
  EXPECT_EQ(spec.layout, BatchLayout::kBatchMajor);  // Keras is batch-major
  EXPECT_TRUE(weights.check_against(spec).ok());
}

TEST(PublicImportModelFile, ReadsAnOnnxModelFile) {
  LstmSpec spec;
  Weights weights;
  const Status st = import_model_file(fixture("onnxruntime/act_all_alpha_beta.onnx"), "auto", "", "", &spec, &weights);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(spec.gate_activation.kind, ActivationKind::kHardSigmoid);
  EXPECT_TRUE(weights.check_against(spec).ok());
}

TEST(PublicImportModelFile, NamesBadArgumentsAndLeavesOutputsAlone) {
  LstmSpec spec;
  spec.hidden_size = 77;
  Weights weights;
  Status st = import_model_file(fixture("keras/bidirectional.safetensors"), "tensorflow", "", "", &spec, &weights);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find("tensorflow"), std::string::npos) << st.message();
  st = import_model_file(fixture("keras/bidirectional.safetensors"), "pytorch", "", "", &spec, &weights);
  EXPECT_EQ(st.code(), StatusCode::kFormatError) << st.to_string();
  st = import_model_file(fixture("keras/no_such_file.safetensors"), "auto", "", "", &spec, &weights);
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.to_string();
  EXPECT_EQ(import_model_file(fixture("keras/bidirectional.safetensors"), "auto", "", "", nullptr, &weights).code(),
            StatusCode::kNullPointer);
  EXPECT_EQ(spec.hidden_size, 77);
  EXPECT_EQ(weights.num_layers(), 0);
}

}  // namespace
}  // namespace culstm
