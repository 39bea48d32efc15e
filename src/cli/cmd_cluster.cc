// `custos init` writes a consortium; `custos local-cluster` runs all of its
// nodes on this machine (the README's main command).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "cli/common.h"
#include "cli/consortium.h"
#include "core/file.h"

namespace custos::cli {

namespace {

struct ClusterOptions {
  InitOptions init;
  std::string log_level = "info";
};

std::string self_executable() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("custos") : p.string();
}

// Starts `custos node --config DIR/node-i/config.json`, its output appended
// to DIR/node-i/node.log.
Result<pid_t> spawn_node(const std::string& exe, const std::string& dir, size_t i,
                         const std::string& log_level) {
  const std::string node_dir = dir + "/node-" + std::to_string(i);
  const std::string config = node_dir + "/config.json";
  const std::string log = node_dir + "/node.log";
  pid_t pid = fork();
  if (pid < 0) return error(ErrorCode::kIo, "fork failed");
  if (pid == 0) {
    FILE* out = std::freopen(log.c_str(), "a", stdout);
    if (out) dup2(fileno(stdout), fileno(stderr));
    // Children get the default signal mask and handlers back.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execl(exe.c_str(), exe.c_str(), "node", "--config", config.c_str(), "--log-level",
          log_level.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

Status run_local_cluster(const ClusterOptions& o) {
  if (!file_exists(o.init.dir + "/genesis.json")) {
    CUSTOS_RETURN_IF_ERROR(init_consortium(o.init));
    spdlog::info("wrote a {}-node consortium to {}", o.init.nodes, o.init.dir);
  }
  size_t nodes = 0;
  while (file_exists(o.init.dir + "/node-" + std::to_string(nodes) + "/config.json")) ++nodes;
  if (nodes == 0) return error(ErrorCode::kNotFound, "no node-*/config.json in " + o.init.dir);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string exe = self_executable();
  std::vector<pid_t> pids;
  for (size_t i = 0; i < nodes; ++i) {
    CUSTOS_ASSIGN_OR_RETURN(pid_t pid, spawn_node(exe, o.init.dir, i, o.log_level));
    pids.push_back(pid);
    auto c = read_node_config(o.init.dir + "/node-" + std::to_string(i) + "/config.json");
    spdlog::info("node-{} (pid {}): API http://{}  log {}/node-{}/node.log", i, pid,
                 c.ok() ? c->api_listen : "?", o.init.dir, i);
  }
  spdlog::info("{} nodes running; Ctrl-C stops them all", nodes);
  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGCHLD) {
      int status = 0;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < pids.size(); ++i) {
          if (pids[i] != pid) continue;
          spdlog::warn("node-{} exited ({}); the others go on (f = {} may fail)", i,
                       WIFEXITED(status) ? "status " + std::to_string(WEXITSTATUS(status))
                                         : "signal " + std::to_string(WTERMSIG(status)),
                       (nodes - 1) / 3);
          pids[i] = 0;
        }
      }
      continue;
    }
    spdlog::info("signal {}: stopping the nodes", sig);
    break;
  }
  for (pid_t pid : pids) {
    if (pid > 0) kill(pid, SIGTERM);
  }
  for (pid_t pid : pids) {
    if (pid > 0) waitpid(pid, nullptr, 0);
  }
  return Status();
}

void add_init_options(CLI::App* cmd, InitOptions& o) {
  cmd->add_option("--dir", o.dir, "Consortium directory")->capture_default_str();
  cmd->add_option("--nodes", o.nodes, "Number of nodes (n = 3f + 1 tolerates f faulty)")
      ->capture_default_str();
  cmd->add_option("--consortium", o.consortium, "Consortium name")->capture_default_str();
  cmd->add_option("--api-base-port", o.api_base_port, "Node i serves HTTP on this port + i")
      ->capture_default_str();
  cmd->add_option("--peer-base-port", o.peer_base_port, "Node i talks to peers on this port + i")
      ->capture_default_str();
}

}  // namespace

void add_cluster_commands(CLI::App& app) {
  auto init = std::make_shared<InitOptions>();
  CLI::App* cmd = app.add_subcommand(
      "init", "Write a consortium: genesis, admin key, node keys, certificates, node configs");
  add_init_options(cmd, *init);
  cmd->add_option("--hosts", init->hosts,
                  "One host per node, in order, for nodes on separate machines (default: all "
                  "on 127.0.0.1)")
      ->delimiter(',');
  cmd->callback([init] {
    Status s = init_consortium(*init);
    if (!s.ok()) {
      exit_status() = fail(s);
      return;
    }
    std::printf("wrote %zu nodes to %s: genesis.json, admin/, node-0 .. node-%zu\n", init->nodes,
                init->dir.c_str(), init->nodes - 1);
  });

  auto cluster = std::make_shared<ClusterOptions>();
  cmd = app.add_subcommand("local-cluster",
                           "Run every node of a consortium on this machine (creates one first "
                           "when the directory has none)");
  add_init_options(cmd, cluster->init);
  cmd->add_option("--log-level", cluster->log_level, "Log level of the nodes")
      ->capture_default_str();
  cmd->callback([cluster] {
    Status s = run_local_cluster(*cluster);
    if (!s.ok()) exit_status() = fail(s);
  });
}

}  // namespace custos::cli
