// The HTTP API as a pure function from request to response, independent of
// the socket library, so the whole request path can be unit-tested and
// fuzzed. docs/api.md documents every route.
#pragma once

#include <map>
#include <string>

#include "node/node.h"

namespace custos::api {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::multimap<std::string, std::string> query;
  std::string content_type;
  std::string accept;
  std::string body;
  std::string remote;  // peer address, for logs
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;
};

inline constexpr const char* kProblemTypePrefix = "urn:custos:problem:";
inline constexpr const char* kContentTypeCose = "application/cose";
inline constexpr const char* kContentTypeCbor = "application/cbor";
inline constexpr const char* kContentTypeProblem = "application/problem+json";

// RFC 9457 problem details for a Status; maps error codes to HTTP statuses.
Response problem(const Status& status);
Response problem(int http_status, const std::string& type, const std::string& detail);
int http_status_for(ErrorCode code);

class Router {
 public:
  explicit Router(node::Node& node) : node_(node) {}
  // Never throws; every failure becomes a problem-details response.
  Response handle(const Request& request);

 private:
  Response route(const Request& r);
  Response post_entry(const Request& r);
  Response post_batch(const Request& r);
  Response get_entry(const Request& r, const std::string& id_hex);
  Response get_receipt(const std::string& id_hex);
  Response get_entries(const Request& r);
  Response get_checkpoint(const Request& r);
  Response get_consistency(const Request& r);
  Response get_block(const std::string& height);
  Response get_key(const std::string& kid_hex);
  Response get_node();
  Response get_genesis();
  Response get_health();
  Response get_metrics();

  node::Node& node_;
};

}  // namespace custos::api
