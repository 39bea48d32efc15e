#include "domain/payload.h"

#include <algorithm>
#include <cmath>

namespace custos::domain {

using cbor::Type;
using cbor::Value;

PayloadReader::PayloadReader(const Value* map, std::string what, std::string prefix,
                             std::shared_ptr<Value> root)
    : map_(map), what_(std::move(what)), prefix_(std::move(prefix)), root_(std::move(root)) {}

Result<PayloadReader> PayloadReader::open(ByteView payload, std::string what) {
  auto decoded = cbor::decode(payload);
  if (!decoded.ok())
    return error(ErrorCode::kMalformed, what + ": payload: " + decoded.status().message());
  auto root = std::make_shared<Value>(std::move(decoded).value());
  if (!root->is(Type::kMap))
    return error(ErrorCode::kMalformed, what + ": payload must be a CBOR map");
  for (const auto& [k, v] : root->as_map()) {
    if (!k.is(Type::kText))
      return error(ErrorCode::kMalformed, what + ": payload keys must be text strings");
  }
  const Value* map = root.get();
  return PayloadReader(map, std::move(what), "", std::move(root));
}

Status PayloadReader::fail(std::string_view field, const std::string& rule) const {
  return error(ErrorCode::kMalformed,
               what_ + ": field '" + prefix_ + std::string(field) + "': " + rule);
}

bool PayloadReader::has(std::string_view name) const {
  return map_->find(name) != nullptr;
}

const Value* PayloadReader::field(std::string_view name) {
  const Value* v = map_->find(name);
  if (v) read_.emplace_back(name);
  return v;
}

Result<PayloadReader> PayloadReader::map(std::string_view name) {
  const Value* v = field(name);
  if (!v) return fail(name, "is required");
  if (!v->is(Type::kMap)) return fail(name, "must be a map");
  for (const auto& [k, _] : v->as_map()) {
    if (!k.is(Type::kText)) return fail(name, "keys must be text strings");
  }
  return PayloadReader(v, what_, prefix_ + std::string(name) + ".", root_);
}

std::optional<PayloadReader> PayloadReader::optional_map(std::string_view name) {
  if (!has(name)) return std::nullopt;
  auto m = map(name);
  if (!m.ok()) return std::nullopt;
  return std::move(m).value();
}

Result<std::string> PayloadReader::text(std::string_view name, size_t max_bytes) {
  const Value* v = field(name);
  if (!v) return fail(name, "is required");
  if (!v->is(Type::kText)) return fail(name, "must be a text string");
  if (v->as_text().empty() || v->as_text().size() > max_bytes)
    return fail(name, "must be 1 to " + std::to_string(max_bytes) + " bytes long");
  return v->as_text();
}

Result<std::optional<std::string>> PayloadReader::optional_text(std::string_view name,
                                                                size_t max_bytes) {
  if (!has(name)) return std::optional<std::string>();
  CUSTOS_ASSIGN_OR_RETURN(std::string t, text(name, max_bytes));
  return std::optional<std::string>(std::move(t));
}

Result<std::string> PayloadReader::id(std::string_view name) {
  CUSTOS_ASSIGN_OR_RETURN(std::string t, text(name, kIdBytesMax));
  Status ok = check_id(t);
  if (!ok.ok()) return fail(name, ok.message());
  return t;
}

Result<std::optional<std::string>> PayloadReader::optional_id(std::string_view name) {
  if (!has(name)) return std::optional<std::string>();
  CUSTOS_ASSIGN_OR_RETURN(std::string t, id(name));
  return std::optional<std::string>(std::move(t));
}

Result<std::string> PayloadReader::one_of(std::string_view name,
                                          const std::vector<std::string_view>& allowed) {
  const Value* v = field(name);
  if (!v) return fail(name, "is required");
  if (v->is(Type::kText)) {
    for (auto a : allowed) {
      if (v->as_text() == a) return v->as_text();
    }
  }
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  return fail(name, "must be one of: " + list);
}

Result<std::optional<std::string>> PayloadReader::optional_one_of(
    std::string_view name, const std::vector<std::string_view>& allowed) {
  if (!has(name)) return std::optional<std::string>();
  CUSTOS_ASSIGN_OR_RETURN(std::string t, one_of(name, allowed));
  return std::optional<std::string>(std::move(t));
}

Result<double> PayloadReader::number(std::string_view name, double min, double max) {
  const Value* v = field(name);
  if (!v) return fail(name, "is required");
  double d = 0;
  if (v->is(Type::kFloat)) {
    d = v->as_float();
  } else if (v->is(Type::kUnsigned)) {
    d = static_cast<double>(v->as_uint());
  } else if (auto i = v->is(Type::kNegative) ? v->as_int64() : std::nullopt) {
    d = static_cast<double>(*i);
  } else {
    return fail(name, "must be a number");
  }
  if (!std::isfinite(d) || d < min || d > max) {
    char range[96];
    std::snprintf(range, sizeof range, "must be a number from %g to %g", min, max);
    return fail(name, range);
  }
  return d;
}

Result<std::optional<double>> PayloadReader::optional_number(std::string_view name, double min,
                                                             double max) {
  if (!has(name)) return std::optional<double>();
  CUSTOS_ASSIGN_OR_RETURN(double d, number(name, min, max));
  return std::optional<double>(d);
}

Result<uint64_t> PayloadReader::uint(std::string_view name, uint64_t min, uint64_t max) {
  const Value* v = field(name);
  if (!v) return fail(name, "is required");
  if (!v->is(Type::kUnsigned) || v->as_uint() < min || v->as_uint() > max) {
    return fail(name, "must be an unsigned integer from " + std::to_string(min) + " to " +
                          std::to_string(max));
  }
  return v->as_uint();
}

Result<Hash256> PayloadReader::digest(std::string_view name) {
  const Value* v = field(name);
  if (!v) return fail(name, "is required");
  if (!v->is(Type::kBytes) || v->as_bytes().size() != 32)
    return fail(name, "must be a 32-byte SHA-256 digest (bstr)");
  Hash256 h;
  std::copy(v->as_bytes().begin(), v->as_bytes().end(), h.begin());
  return h;
}

Result<std::optional<Hash256>> PayloadReader::optional_digest(std::string_view name) {
  if (!has(name)) return std::optional<Hash256>();
  CUSTOS_ASSIGN_OR_RETURN(Hash256 h, digest(name));
  return std::optional<Hash256>(h);
}

Result<Bytes> PayloadReader::bytes(std::string_view name, size_t max_bytes) {
  const Value* v = field(name);
  if (!v) return fail(name, "is required");
  if (!v->is(Type::kBytes) || v->as_bytes().size() > max_bytes)
    return fail(name, "must be a byte string of at most " + std::to_string(max_bytes) + " bytes");
  return v->as_bytes();
}

Result<std::vector<std::string>> PayloadReader::text_list(std::string_view name, size_t max_items,
                                                          size_t max_bytes) {
  const Value* v = field(name);
  if (!v) return fail(name, "is required");
  if (!v->is(Type::kArray) || v->as_array().empty() || v->as_array().size() > max_items)
    return fail(name, "must be an array of 1 to " + std::to_string(max_items) + " text strings");
  std::vector<std::string> out;
  for (const auto& item : v->as_array()) {
    if (!item.is(Type::kText) || item.as_text().empty() || item.as_text().size() > max_bytes)
      return fail(name,
                  "items must be text strings of 1 to " + std::to_string(max_bytes) + " bytes");
    if (std::find(out.begin(), out.end(), item.as_text()) != out.end())
      return fail(name, "'" + item.as_text() + "' is listed twice");
    out.push_back(item.as_text());
  }
  return out;
}

Result<std::string> PayloadReader::date(std::string_view name) {
  CUSTOS_ASSIGN_OR_RETURN(std::string t, text(name, 10));
  Status ok = check_date(t);
  if (!ok.ok()) return fail(name, ok.message());
  return t;
}

Result<std::optional<std::string>> PayloadReader::optional_date(std::string_view name) {
  if (!has(name)) return std::optional<std::string>();
  CUSTOS_ASSIGN_OR_RETURN(std::string t, date(name));
  return std::optional<std::string>(std::move(t));
}

Status PayloadReader::finish() const {
  for (const auto& [k, _] : map_->as_map()) {
    const std::string& name = k.as_text();
    if (std::find(read_.begin(), read_.end(), name) == read_.end())
      return error(ErrorCode::kMalformed,
                   what_ + ": field '" + prefix_ + name + "' is not part of this statement");
  }
  return Status();
}

namespace {
bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
Status bad(const std::string& why) {
  return error(ErrorCode::kMalformed, why);
}
}  // namespace

const std::vector<std::string_view>& dose_units() {
  static const std::vector<std::string_view> kUnits = {
      "mg",        "ug",     "g",      "[iU]",   "mmol",    "meq",       "mL",
      "mg/h",      "ug/h",   "[iU]/h", "mL/h",   "mg/kg/h", "ug/kg/min", "ug/kg/h",
      "[iU]/kg/h", "mg/min", "ug/min", "mmol/h", "meq/h"};
  return kUnits;
}

Result<Quantity> read_quantity(PayloadReader& p, std::string_view field, double max,
                               bool rate_only) {
  CUSTOS_ASSIGN_OR_RETURN(PayloadReader q, p.map(field));
  Quantity out;
  CUSTOS_ASSIGN_OR_RETURN(out.value, q.number("value", 0, max));
  if (out.value <= 0) return q.fail("value", "must be above 0");
  if (rate_only) {
    CUSTOS_ASSIGN_OR_RETURN(out.unit, q.one_of("unit", {kRateUnit}));
  } else {
    CUSTOS_ASSIGN_OR_RETURN(out.unit, q.one_of("unit", dose_units()));
  }
  CUSTOS_RETURN_IF_ERROR(q.finish());
  return out;
}

int gs1_check_digit(std::string_view digits) {
  // GS1 mod 10: from the right, weights 3, 1, 3, 1, ...
  int sum = 0;
  bool three = true;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it, three = !three)
    sum += (*it - '0') * (three ? 3 : 1);
  return (10 - sum % 10) % 10;
}

namespace {
Status check_gs1(std::string_view digits, const char* what) {
  const int expected = gs1_check_digit(digits.substr(0, digits.size() - 1));
  const int got = digits.back() - '0';
  if (expected != got)
    return bad(std::string(what) + " check digit is " + std::to_string(got) + ", expected " +
               std::to_string(expected));
  return Status();
}
}  // namespace

Status check_gtin(std::string_view d) {
  if (!all_digits(d) || (d.size() != 8 && d.size() != 12 && d.size() != 13 && d.size() != 14))
    return bad("a GTIN must be 8, 12, 13 or 14 digits");
  return check_gs1(d, "GTIN");
}

Status check_gln(std::string_view d) {
  if (!all_digits(d) || d.size() != 13) return bad("a GLN must be 13 digits");
  return check_gs1(d, "GLN");
}

Status check_date(std::string_view t) {
  if (t.size() != 10 || t[4] != '-' || t[7] != '-' || !all_digits(t.substr(0, 4)) ||
      !all_digits(t.substr(5, 2)) || !all_digits(t.substr(8, 2)))
    return bad("must be a date YYYY-MM-DD");
  const int y = std::stoi(std::string(t.substr(0, 4)));
  const int m = std::stoi(std::string(t.substr(5, 2)));
  const int d = std::stoi(std::string(t.substr(8, 2)));
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (y < 1970 || m < 1 || m > 12 || d < 1 || d > kDays[m - 1] + (m == 2 && leap ? 1 : 0))
    return bad("'" + std::string(t) + "' is not a calendar date from 1970 on");
  return Status();
}

Status check_id(std::string_view t) {
  if (t.empty() || t.size() > kIdBytesMax)
    return bad("an id must be 1 to " + std::to_string(kIdBytesMax) + " characters");
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    const bool punct = c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
    if (!alnum && (i == 0 || !punct))
      return bad("an id may hold only A-Z a-z 0-9 . _ : / - and starts with a letter or digit");
  }
  return Status();
}

Status check_pseudonym(std::string_view t) {
  const std::string_view hex = t.substr(std::min(t.size(), kPseudonymPrefix.size()));
  const bool ok = t.substr(0, kPseudonymPrefix.size()) == kPseudonymPrefix && hex.size() >= 16 &&
                  hex.size() <= 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
                    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                  });
  if (!ok)
    return bad(
        "a patient is named only by a pseudonym: 'pseudonym:' and 16 to 64 lowercase hex "
        "digits");
  return Status();
}

}  // namespace custos::domain
