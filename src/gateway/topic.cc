#include "gateway/topic.h"

#include <array>

#include "gateway/limits.h"

namespace custos::gateway {

namespace {

constexpr std::array<std::pair<TopicKind, std::string_view>, 5> kKinds = {{
    {TopicKind::kEvent, "event"},
    {TopicKind::kAlarm, "alarm"},
    {TopicKind::kStatus, "status"},
    {TopicKind::kAck, "ack"},
    {TopicKind::kError, "error"},
}};

std::optional<TopicKind> kind_from_name(std::string_view name) {
  for (const auto& [kind, text] : kKinds) {
    if (text == name) return kind;
  }
  return std::nullopt;
}

}  // namespace

const char* topic_kind_name(TopicKind kind) {
  for (const auto& [k, text] : kKinds) {
    if (k == kind) return text.data();
  }
  return "?";
}

std::string DeviceTopic::str() const {
  return with_kind(kind);
}

std::string DeviceTopic::with_kind(TopicKind other) const {
  std::string t(kTopicRoot);
  for (const std::string* s : {&site, &unit, &device_class, &device_id}) {
    t += '/';
    t += *s;
  }
  t += '/';
  t += topic_kind_name(other);
  return t;
}

bool valid_topic_segment(std::string_view segment) {
  if (segment.empty() || segment.size() > limits::kTopicSegmentBytesMax) return false;
  for (char c : segment) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<DeviceTopic> parse_device_topic(std::string_view topic) {
  if (topic.size() > limits::kTopicBytesMax) {
    return error(ErrorCode::kInvalidArgument,
                 "topic longer than " + std::to_string(limits::kTopicBytesMax) + " bytes");
  }
  const std::string root = std::string(kTopicRoot) + "/";
  if (topic.substr(0, root.size()) != root) {
    return error(ErrorCode::kInvalidArgument, "topic does not start with " + root);
  }
  std::array<std::string_view, 5> parts;
  std::string_view rest = topic.substr(root.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const size_t slash = rest.find('/');
    const bool last = i + 1 == parts.size();
    if (last != (slash == std::string_view::npos)) {
      return error(ErrorCode::kInvalidArgument,
                   "topic must be iomt/v1/{site}/{unit}/{device-class}/{device-id}/{kind}");
    }
    parts[i] = last ? rest : rest.substr(0, slash);
    if (!last) rest = rest.substr(slash + 1);
  }
  for (size_t i = 0; i < 4; ++i) {
    if (!valid_topic_segment(parts[i])) {
      return error(ErrorCode::kInvalidArgument,
                   "topic segment " + std::to_string(i + 3) + " is not 1-64 of [A-Za-z0-9._:-]");
    }
  }
  auto kind = kind_from_name(parts[4]);
  if (!kind) return error(ErrorCode::kInvalidArgument, "unknown topic kind");
  return DeviceTopic{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]),
                     std::string(parts[3]), *kind};
}

}  // namespace custos::gateway
