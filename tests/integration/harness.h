// Shared helpers for the integration tests: run a real `custos` binary (a
// node, or a one-shot CLI command) in a fresh temporary directory, talk to it
// over HTTP on loopback, and sign the statements a client would send.
//
// Header-only on purpose: the CMake glob builds every *_test.cc under
// tests/integration into one executable, and inline helpers need no second
// glob or library target.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "codec/cbor.h"
#include "codec/cbor_json.h"
#include "core/bytes.h"
#include "core/file.h"
#include "cose/receipt.h"
#include "cose/statement.h"
#include "crypto/keys.h"
#include "ledger/policy.h"

namespace custos::integration {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The one receipt in a one-node consortium's receipt bundle.
inline Result<cose::Receipt> single_receipt(ByteView body) {
  auto bundle = cose::parse_receipt_bundle(body);
  if (!bundle.ok()) return bundle.status();
  if (bundle->size() != 1) {
    return error(ErrorCode::kMalformed,
                 "expected one receipt, got " + std::to_string(bundle->size()));
  }
  return (*bundle)[0];
}

inline const char* custos_binary() {
  return CUSTOS_BINARY;
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void spit(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

// Percent-encodes a query parameter value ('+' would otherwise mean space).
using custos::percent_encode;

inline std::string as_string(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

// A directory under $TMPDIR removed with everything in it at the end of the
// test; kept when CUSTOS_KEEP_TMP is set, so a failure can be inspected.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "custos-integ-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    if (std::getenv("CUSTOS_KEEP_TMP")) {
      std::fprintf(stderr, "[harness] keeping %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `pred` every step_ms until it holds or `timeout` passes; its last
// answer.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout, int step_ms = 50) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
  }
  return pred();
}

// A loopback port nobody listens on right now. Another process could take it
// before the node binds; the node then fails to start and start() says so.
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a loopback port");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// fork + exec with stdin from /dev/null (or `stdin_path`) and stdout/stderr
// appended to the given files. Returns the child's pid.
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
                   const std::string& stderr_path, const std::string& stdin_path = "/dev/null") {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the test process
    // has threads (gtest, HTTP clients) whose locks may be held.
    // If the test binary dies (crash, timeout), its nodes die with it
    // instead of holding ports and CPU. (Tied to the forking thread: we
    // fork from the test's main thread only.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int in = ::open(stdin_path.c_str(), O_RDONLY);
    int out = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// waitpid, returning the exit code, or 128 + signal when killed.
inline int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `custos ARGS...` to completion; its output is captured in files under
// `scratch` (so large outputs cannot block on a pipe).
inline CommandResult run_custos(const std::string& scratch, const std::vector<std::string>& args,
                                const std::string& stdin_path = "/dev/null") {
  static std::atomic<int> counter{0};
  const std::string base = scratch + "/cmd-" + std::to_string(counter++);
  std::vector<std::string> argv{custos_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_t pid = spawn(argv, base + ".out", base + ".err", stdin_path);
  CommandResult r;
  r.exit_code = wait_exit(pid);
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  std::filesystem::remove(base + ".out");
  std::filesystem::remove(base + ".err");
  return r;
}

inline std::unique_ptr<httplib::Client> make_client(int port, int read_timeout_s = 30) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_connection_timeout(2, 0);
  c->set_read_timeout(read_timeout_s, 0);
  c->set_write_timeout(10, 0);
  c->set_keep_alive(true);
  return c;
}

// One `custos node --dev` process on loopback. The data directory and port
// survive kill()/start(), so a restart recovers the same ledger.
class NodeProcess {
 public:
  explicit NodeProcess(std::string root) : root_(std::move(root)), port_(free_port()) {}
  ~NodeProcess() {
    if (running()) kill();
  }
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  std::string data_dir() const { return root_ + "/data"; }
  std::string log_path() const { return root_ + "/node.log"; }
  std::string admin_key_path() const { return data_dir() + "/keys/admin.key"; }
  std::string node_pub_path() const { return data_dir() + "/keys/node.pub"; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Starts the node and waits until /healthz answers 200 from *this* node
  // (its key is the one in our data directory). Fails the test otherwise.
  ::testing::AssertionResult start(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    if (running()) return ::testing::AssertionFailure() << "already running";
    launch();
    return wait_healthy(timeout);
  }

  // Starts the process without waiting for it (to kill it mid-recovery).
  void launch() {
    pid_ = spawn({custos_binary(), "node", "--dev", "--data-dir", data_dir(), "--listen",
                  "127.0.0.1:" + std::to_string(port_)},
                 log_path(), log_path());
  }

  ::testing::AssertionResult wait_healthy(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    auto client = make_client(port_, 2);
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure()
               << "node exited during start (status " << status << "); log:\n"
               << slurp(log_path());
      }
      if (auto res = client->Get("/healthz"); res && res->status == 200) {
        if (!node_key_) load_node_key();
        auto info = client->Get("/v1/node");
        if (info && info->status == 200 &&
            Json::parse(info->body).value("kid", "") == to_hex(node_key_->kid())) {
          return ::testing::AssertionSuccess();
        }
        return ::testing::AssertionFailure()
               << "port " << port_ << " is answered by another node (port stolen?)";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return ::testing::AssertionFailure()
           << "node not healthy within " << timeout.count() << " ms; log:\n"
           << slurp(log_path());
  }

  // SIGTERM: a clean stop. Returns the exit code.
  int stop() { return signal_and_wait(SIGTERM); }
  // SIGKILL: the crash the durability promise is about.
  int kill() { return signal_and_wait(SIGKILL); }

  const crypto::PublicKey& node_key() {
    if (!node_key_) load_node_key();
    return *node_key_;
  }
  crypto::PrivateKey admin_key() const {
    auto k = crypto::PrivateKey::from_pem(slurp(admin_key_path()));
    if (!k.ok()) throw std::runtime_error("admin key: " + k.status().to_string());
    return std::move(k).value();
  }

 private:
  int signal_and_wait(int sig) {
    if (!running()) return -1;
    ::kill(pid_, sig);
    int code = wait_exit(pid_);
    pid_ = -1;
    return code;
  }
  void load_node_key() {
    auto k = crypto::PublicKey::from_pem(slurp(node_pub_path()));
    if (!k.ok()) throw std::runtime_error("node key: " + k.status().to_string());
    node_key_ = std::move(k).value();
  }

  std::string root_;
  int port_;
  pid_t pid_ = -1;
  std::optional<crypto::PublicKey> node_key_;
};

inline uint64_t unix_seconds() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// A client key and the sequence numbers it has used. Not thread-safe; each
// client thread owns its own signer.
struct Signer {
  crypto::PrivateKey key;
  std::string issuer;
  uint64_t next_sequence = 1;

  static Signer generate(std::string issuer, crypto::Algorithm alg = crypto::Algorithm::kEd25519) {
    auto k = crypto::PrivateKey::generate(alg);
    if (!k.ok()) throw std::runtime_error("keygen: " + k.status().to_string());
    return Signer{std::move(k).value(), std::move(issuer), 1};
  }
  std::string kid_hex() const { return to_hex(key.public_key().kid()); }

  // Signs `payload` with the next sequence number (or `sequence` if given).
  Bytes sign(const std::string& subject, const Bytes& payload,
             const std::string& content_type = std::string(ledger::kTypeCbor),
             std::optional<uint64_t> sequence = std::nullopt) {
    cose::StatementHeader h;
    h.content_type = content_type;
    h.issuer = issuer;
    h.subject = subject;
    h.issued_at_s = unix_seconds();
    h.sequence = sequence ? *sequence : next_sequence;
    next_sequence = std::max(next_sequence, h.sequence + 1);
    return cose::sign_statement(key, h, payload);
  }
  // A JSON document as the deterministic CBOR payload `custos sign --json` makes.
  Bytes sign_json(const std::string& subject, const Json& doc,
                  std::optional<uint64_t> sequence = std::nullopt) {
    auto v = cbor::from_json(doc);
    if (!v.ok()) throw std::runtime_error("from_json: " + v.status().to_string());
    return sign(subject, cbor::encode(*v), std::string(ledger::kTypeCbor), sequence);
  }
};

inline httplib::Result post_cose(httplib::Client& c, const Bytes& statement) {
  return c.Post("/v1/entries", as_string(statement), "application/cose");
}

inline Bytes batch_body(const std::vector<Bytes>& statements) {
  cbor::Array items;
  for (const auto& s : statements) items.push_back(cbor::Value::bytes(s));
  return cbor::encode(cbor::Value::array(std::move(items)));
}

inline httplib::Result post_batch(httplib::Client& c, const std::vector<Bytes>& statements) {
  return c.Post("/v1/entries/batch", as_string(batch_body(statements)), "application/cbor");
}

// Signs an admin statement the way `custos keys register|revoke` does: the
// admin's registered name as issuer and the node's last accepted sequence
// number + 1 (asked fresh each time, so several tests can share a node).
inline Bytes sign_admin(httplib::Client& c, const crypto::PrivateKey& admin,
                        std::string_view content_type, const std::string& subject,
                        const Bytes& payload) {
  auto res = c.Get("/v1/keys/" + to_hex(admin.public_key().kid()));
  if (!res || res->status != 200) throw std::runtime_error("cannot read the admin key state");
  Json info = Json::parse(res->body);
  cose::StatementHeader h;
  h.content_type = std::string(content_type);
  h.issuer = info.value("name", "");
  h.subject = subject;
  h.issued_at_s = unix_seconds();
  h.sequence = info["last_sequence"].get<uint64_t>() + 1;
  return cose::sign_statement(admin, h, payload);
}

// Registers `key` with `roles` through the API; returns the HTTP answer's JSON.
inline ::testing::AssertionResult register_key(httplib::Client& c, const crypto::PrivateKey& admin,
                                               const crypto::PublicKey& key,
                                               const std::string& name,
                                               const std::vector<std::string>& roles = {"issuer"}) {
  ledger::KeyRegistration reg;
  reg.spki_der = key.spki_der();
  auto bits = ledger::roles_from_names(roles);
  if (!bits.ok()) return ::testing::AssertionFailure() << bits.status().to_string();
  reg.roles = *bits;
  reg.name = name;
  Bytes st = sign_admin(c, admin, ledger::kTypeKeyRegister, to_hex(key.kid()),
                        cbor::encode(ledger::key_registration_payload(reg)));
  auto res = post_cose(c, st);
  if (!res) return ::testing::AssertionFailure() << "register: " << httplib::to_string(res.error());
  if (res->status != 201) {
    return ::testing::AssertionFailure() << "register: HTTP " << res->status << " " << res->body;
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult revoke_key(httplib::Client& c, const crypto::PrivateKey& admin,
                                             const Hash256& kid) {
  ledger::KeyRevocation rev;
  rev.kid = kid;
  rev.reason = "integration test";
  Bytes st = sign_admin(c, admin, ledger::kTypeKeyRevoke, to_hex(kid),
                        cbor::encode(ledger::key_revocation_payload(rev)));
  auto res = post_cose(c, st);
  if (!res) return ::testing::AssertionFailure() << "revoke: " << httplib::to_string(res.error());
  if (res->status != 201) {
    return ::testing::AssertionFailure() << "revoke: HTTP " << res->status << " " << res->body;
  }
  return ::testing::AssertionSuccess();
}

// Log size as /healthz reports it; throws when the node does not answer.
inline uint64_t log_size(httplib::Client& c) {
  auto res = c.Get("/healthz");
  if (!res || res->status != 200) throw std::runtime_error("healthz failed");
  return Json::parse(res->body)["log_size"].get<uint64_t>();
}

// Checks an RFC 9457 answer: status, media type and urn:custos:problem:TYPE.
inline ::testing::AssertionResult is_problem(const httplib::Result& res, int status,
                                             const std::string& type) {
  if (!res)
    return ::testing::AssertionFailure() << "no answer: " << httplib::to_string(res.error());
  if (res->status != status) {
    return ::testing::AssertionFailure()
           << "HTTP " << res->status << " (want " << status << "): " << res->body;
  }
  const std::string ct = res->get_header_value("Content-Type");
  if (ct.rfind("application/problem+json", 0) != 0) {
    return ::testing::AssertionFailure() << "Content-Type " << ct << ": " << res->body;
  }
  Json doc = Json::parse(res->body, nullptr, false);
  if (!doc.is_object()) return ::testing::AssertionFailure() << "not JSON: " << res->body;
  const std::string want = "urn:custos:problem:" + type;
  if (doc.value("type", "") != want || doc.value("status", 0) != status ||
      doc.value("detail", "").empty()) {
    return ::testing::AssertionFailure() << "want type " << want << ", got " << res->body;
  }
  return ::testing::AssertionSuccess();
}

// Parses a 2xx JSON answer or fails the calling test with the answer.
inline Json json_of(const httplib::Result& res) {
  if (!res) {
    ADD_FAILURE() << "no answer: " << httplib::to_string(res.error());
    return Json();
  }
  Json doc = Json::parse(res->body, nullptr, false);
  if (res->status / 100 != 2 || doc.is_discarded()) {
    ADD_FAILURE() << "HTTP " << res->status << ": " << res->body;
    return Json();
  }
  return doc;
}

}  // namespace custos::integration
