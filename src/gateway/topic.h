// The device topic scheme (docs/gateway.md, "Topics"):
//   iomt/v1/{site}/{unit}/{device-class}/{device-id}/{kind}
// kind is event, alarm or status for what devices publish, ack or error for
// what the gateway answers. Segments are 1..64 bytes of [A-Za-z0-9._:-] (so
// no MQTT wildcard, no '/', no '$' can hide in one): a device id as the
// domain allows it (docs/domain.md), without '/'.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace custos::gateway {

inline constexpr std::string_view kTopicRoot = "iomt/v1";
// What the gateway subscribes to: every message any device publishes.
inline constexpr std::string_view kDeviceTopicFilter = "iomt/v1/+/+/+/+/+";

enum class TopicKind { kEvent, kAlarm, kStatus, kAck, kError };

const char* topic_kind_name(TopicKind kind);

struct DeviceTopic {
  std::string site;
  std::string unit;
  std::string device_class;
  std::string device_id;
  TopicKind kind = TopicKind::kEvent;

  // iomt/v1/site/unit/class/id/<kind>
  std::string str() const;
  // The same device's topic of another kind (ack, error).
  std::string with_kind(TopicKind other) const;
};

// A segment of the scheme: 1..64 bytes of A-Z, a-z, 0-9, '.', '_', ':', '-'.
bool valid_topic_segment(std::string_view segment);

// Parses any topic of the scheme; kInvalidArgument with the reason otherwise.
Result<DeviceTopic> parse_device_topic(std::string_view topic);

}  // namespace custos::gateway
