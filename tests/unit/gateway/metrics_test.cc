// The gateway's Prometheus text: every reason labelled (bounded label set),
// histograms cumulative, quantiles from buckets.
#include "gateway/metrics.h"

#include <gtest/gtest.h>

namespace custos::gateway {
namespace {

TEST(Metrics, RendersEveryReasonAndCumulativeHistograms) {
  Metrics m;
  m.received += 3;
  m.refuse(Reason::kBadSignature);
  m.refuse(Reason::kBadSignature);
  m.publish_to_registered_s.observe(0.003);
  m.publish_to_registered_s.observe(0.4);
  m.publish_to_registered_s.observe(1000);  // beyond the last bound: +Inf
  std::string out;
  m.render(out, 7, 700, 2);
  EXPECT_NE(out.find("custos_gateway_received_total 3\n"), std::string::npos);
  EXPECT_NE(out.find("custos_gateway_refused_total{reason=\"bad-signature\"} 2\n"),
            std::string::npos);
  for (int i = 0; i < kReasonCount; ++i) {
    const std::string label =
        std::string("custos_gateway_refused_total{reason=\"") + reason_name(static_cast<Reason>(i));
    EXPECT_NE(out.find(label), std::string::npos) << label;
  }
  EXPECT_NE(out.find("custos_gateway_spool_depth 7\n"), std::string::npos);
  EXPECT_NE(out.find("custos_gateway_publish_to_registered_seconds_bucket{le=\"0.005\"} 1\n"),
            std::string::npos);
  EXPECT_NE(out.find("custos_gateway_publish_to_registered_seconds_bucket{le=\"0.5\"} 2\n"),
            std::string::npos);
  EXPECT_NE(out.find("custos_gateway_publish_to_registered_seconds_bucket{le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(out.find("custos_gateway_publish_to_registered_seconds_count 3\n"), std::string::npos);
  EXPECT_EQ(m.refused_total(), 2u);
  EXPECT_DOUBLE_EQ(m.publish_to_registered_s.quantile(0.5), 0.5);
}

}  // namespace
}  // namespace custos::gateway
