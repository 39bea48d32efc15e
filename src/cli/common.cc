#include "cli/common.h"

#include <httplib.h>

#include <cstdio>
#include <nlohmann/json.hpp>

namespace custos::cli {

struct NodeClient::Impl {
  explicit Impl(const std::string& url) : client(url) {
    client.set_connection_timeout(std::chrono::seconds(5));
    client.set_read_timeout(std::chrono::seconds(60));
    client.set_write_timeout(std::chrono::seconds(60));
    client.set_keep_alive(true);
    // httplib writes headers and body separately; without TCP_NODELAY, Nagle
    // and the server's delayed ACK add ~40 ms to every request.
    client.set_tcp_nodelay(true);
  }
  httplib::Client client;
};

NodeClient::NodeClient(const std::string& url) : url_(url), impl_(std::make_unique<Impl>(url)) {}
NodeClient::~NodeClient() = default;

namespace {
Result<HttpReply> convert(const httplib::Result& res, const std::string& url) {
  if (!res) {
    return error(ErrorCode::kIo,
                 "cannot reach the node at " + url + " (" + httplib::to_string(res.error()) + ")");
  }
  return HttpReply{res->status, res->get_header_value("Content-Type"), res->body};
}
}  // namespace

Result<HttpReply> NodeClient::get(const std::string& path, const std::string& accept) {
  return convert(impl_->client.Get(path, {{"Accept", accept}}), url_);
}

Result<HttpReply> NodeClient::post(const std::string& path, const std::string& body,
                                   const std::string& content_type) {
  return convert(impl_->client.Post(path, body, content_type), url_);
}

Status reply_error(const HttpReply& reply) {
  auto doc = nlohmann::json::parse(reply.body, nullptr, false);
  std::string detail = reply.body.substr(0, 300);
  ErrorCode code = reply.status >= 500 ? ErrorCode::kUnavailable : ErrorCode::kInvalidArgument;
  if (doc.is_object() && doc.contains("detail") && doc["detail"].is_string()) {
    detail = doc["detail"].get<std::string>();
    std::string type = doc.value("type", "");
    for (int c = 1; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
      if (type == std::string("urn:custos:problem:") + error_code_name(static_cast<ErrorCode>(c))) {
        code = static_cast<ErrorCode>(c);
      }
    }
  }
  return error(code, "HTTP " + std::to_string(reply.status) + ": " + detail);
}

int& exit_status() {
  static int code = kExitOk;
  return code;
}

int exit_code_for(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kOk:
      return kExitOk;
    case ErrorCode::kIo:
    case ErrorCode::kUnavailable:
      return kExitIo;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
      return kExitUsage;
    default:
      return kExitRefused;
  }
}

int fail(const Status& status) {
  std::fprintf(stderr, "error: %s\n", status.to_string().c_str());
  return exit_code_for(status);
}

Status get_and_print_json(NodeClient& client, const std::string& path) {
  CUSTOS_ASSIGN_OR_RETURN(HttpReply reply, client.get(path));
  if (!reply.ok()) return reply_error(reply);
  auto j = nlohmann::json::parse(reply.body, nullptr, false);
  if (j.is_discarded()) return error(ErrorCode::kMalformed, "the node answered with invalid JSON");
  std::printf("%s\n", j.dump(2).c_str());
  return Status();
}

}  // namespace custos::cli
