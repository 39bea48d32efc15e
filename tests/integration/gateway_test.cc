// The device gateway end to end with real parts: a Mosquitto broker over
// TLS with client certificates and ACLs (from `custos broker init`), a real
// `custos node --dev`, `custos gateway` processes, the C SDK's pump example
// and an independent MQTT client (libmosquitto; mosquitto_pub in one test).
// Hostile messages are refused on the device's error topic with a reason
// and counted; a gateway killed inside on_message, a gateway SIGKILL, a
// broker restart and a node kill during load lose nothing the broker
// acknowledged to the publisher.
#include <poll.h>

#include <set>

#include "custos_device.h"
#include "integration/cluster_harness.h"
#include "integration/gateway_harness.h"

namespace custos::integration {
namespace {

class GatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mosquitto_lib_init();
    dir_ = new TempDir();
    std::filesystem::create_directories(dir_->path() + "/node");
    node_ = new NodeProcess(dir_->path() + "/node");
    ASSERT_TRUE(node_->start());
    broker_ = new BrokerProcess(dir_->path() + "/broker");
    ASSERT_TRUE(broker_->start());
    maker_ = new Maker(register_maker(dir_->path(), *node_));
    gateway_ = new GatewayProcess(dir_->path() + "/gw", *broker_, {node_->url()});
    ASSERT_TRUE(gateway_->start());
  }
  static void TearDownTestSuite() {
    if (gateway_ && gateway_->running()) {
      EXPECT_EQ(gateway_->stop(), 0) << slurp(gateway_->log_path());
    }
    delete gateway_;
    delete broker_;
    delete maker_;
    if (node_ && node_->running()) node_->stop();
    delete node_;
    delete dir_;
  }
  void SetUp() override { client_ = make_client(node_->port()); }

  Device device(const std::string& prefix, bool register_it = true,
                crypto::Algorithm alg = crypto::Algorithm::kES256) {
    static std::atomic<int> n{0};
    return make_device(dir_->path(), *node_, *maker_, *broker_, prefix + "-" + std::to_string(n++),
                       register_it, alg);
  }

  static TempDir* dir_;
  static NodeProcess* node_;
  static BrokerProcess* broker_;
  static Maker* maker_;
  static GatewayProcess* gateway_;
  std::unique_ptr<httplib::Client> client_;
};

TempDir* GatewayTest::dir_ = nullptr;
NodeProcess* GatewayTest::node_ = nullptr;
BrokerProcess* GatewayTest::broker_ = nullptr;
Maker* GatewayTest::maker_ = nullptr;
GatewayProcess* GatewayTest::gateway_ = nullptr;

TEST_F(GatewayTest, SdkPumpEventsAreRegisteredOnceWithAcksAndReceipts) {
  Device pump = device("pump");
  const std::string state = dir_->path() + "/" + pump.id + "-state";
  auto run_pump = [&](int count) {
    const std::string out = dir_->path() + "/" + pump.id + ".out";
    std::filesystem::remove(out);
    pid_t pid = spawn({pump_example_binary(),
                       "--id",
                       pump.id,
                       "--key",
                       pump.key_path,
                       "--state",
                       state,
                       "--ca",
                       broker_->dir() + "/ca.crt",
                       "--cert",
                       pump.tls + ".crt",
                       "--cert-key",
                       pump.tls + ".key",
                       "--port",
                       std::to_string(broker_->port()),
                       "--count",
                       std::to_string(count),
                       "--receipts",
                       "--timeout-ms",
                       "30000"},
                      out, out);
    EXPECT_EQ(wait_exit(pid), 0) << slurp(out) << slurp(gateway_->log_path());
    return slurp(out);
  };
  std::string out = run_pump(7);
  // One ack per event, each with an entry id, index and a receipt bundle.
  std::istringstream lines(out);
  std::string line;
  int acks = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("ack ", 0) != 0) continue;
    Json ack = Json::parse(line.substr(line.find('{')));
    EXPECT_EQ(ack.value("status", ""), "registered") << line;
    auto receipt = base64_decode(ack.value("receipt", ""));
    ASSERT_TRUE(receipt.ok()) << line;
    auto bundle = cose::parse_receipt_bundle(*receipt);
    ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
    EXPECT_EQ(bundle->size(), 1u);
    ++acks;
  }
  EXPECT_EQ(acks, 7) << out;
  EXPECT_NE(out.find(R"({"sent":7,"acked":7,"refused":0,"pending":0})"), std::string::npos) << out;
  // The pump runs again from the same state: sequence numbers go on, nothing
  // is registered twice.
  out = run_pump(3);
  auto ids = entry_ids_by_issuer(*client_, pump.id);
  EXPECT_EQ(ids.size(), 10u);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  auto key = client_->Get("/v1/keys/" + to_hex(pump.key.public_key().kid()));
  ASSERT_TRUE(key && key->status == 200);
  EXPECT_EQ(Json::parse(key->body)["last_sequence"], 10);
  // Every record went from ingest to its lane in memory: none read back.
  EXPECT_EQ(gateway_->status().value("spool_reads", -1), 0);
}

TEST_F(GatewayTest, MosquittoPubStatementIsRegisteredAndAcknowledged) {
  Device d = device("monitor", true, crypto::Algorithm::kEd25519);
  MqttClient listener(*broker_, d.id + "-listener", d.tls);
  ASSERT_TRUE(listener.wait_connected());
  listener.subscribe(d.topic("ack"));
  const Bytes st = d.event({{"event", "status"}, {"state", "idle"}, {"battery_pct", 80}});
  const std::string file = dir_->path() + "/" + d.id + ".cose";
  spit(file, as_string(st));
  const std::string out = dir_->path() + "/" + d.id + ".pub";
  // A separate client program: its own client id, the device's certificate.
  pid_t pid = spawn({"/usr/bin/mosquitto_pub",
                     "-V",
                     "mqttv5",
                     "-h",
                     "127.0.0.1",
                     "-p",
                     std::to_string(broker_->port()),
                     "--cafile",
                     broker_->dir() + "/ca.crt",
                     "--cert",
                     d.tls + ".crt",
                     "--key",
                     d.tls + ".key",
                     "-i",
                     d.id,
                     "-q",
                     "1",
                     "-t",
                     d.topic("status"),
                     "-f",
                     file,
                     "-D",
                     "publish",
                     "response-topic",
                     d.topic("ack"),
                     "-D",
                     "publish",
                     "correlation-data",
                     "c-42"},
                    out, out);
  ASSERT_EQ(wait_exit(pid), 0) << slurp(out);
  auto ack = listener.answer(d.topic("ack"), "c-42");
  ASSERT_TRUE(ack) << slurp(gateway_->log_path());
  EXPECT_EQ((*ack)["id"], to_hex(crypto::sha256(st)));
  EXPECT_EQ((*ack)["status"], "registered");
  EXPECT_TRUE(on_ledger(*client_, st));
}

// Each hostile kind of message: refused on the error topic with its reason,
// counted, nothing stored, and the gateway goes on.
TEST_F(GatewayTest, HostileMessagesAreRefusedWithAReasonAndCounted) {
  Device a = device("hostile-a");
  Device b = device("hostile-b");
  Device revoked = device("revoked");
  Device unknown = device("unknown", /*register_it=*/false);
  ASSERT_TRUE(revoke_key(*client_, node_->admin_key(), revoked.key.public_key().kid()));

  // One good event first, so a replay has something to replay.
  MqttClient ca(*broker_, a.id, a.tls);
  ASSERT_TRUE(ca.wait_connected());
  ca.subscribe(a.topic("ack"));
  ca.subscribe(a.topic("error"));
  Bytes first = a.rate_change(10);
  Bytes second = a.rate_change(11);
  ASSERT_TRUE(ca.publish(a.topic("event"), first, "first", a.topic("ack"), "good-1"));
  ASSERT_TRUE(ca.publish(a.topic("event"), second, "second", a.topic("ack"), "good-2"));
  ASSERT_TRUE(ca.answer(a.topic("ack"), "good-2")) << slurp(gateway_->log_path());
  const uint64_t size_before = log_size(*client_);

  struct Case {
    std::string reason;
    std::string topic;
    Bytes payload;
  };
  Bytes bad_sig = a.rate_change(12);
  bad_sig[bad_sig.size() - 5] ^= 0x01;
  // The 64-byte signature bstr (2 + 64 bytes at the end) replaced by an
  // empty bstr.
  const Bytes signed_cose = a.rate_change(13);
  Bytes unsigned_cose(signed_cose.begin(), signed_cose.begin() + (signed_cose.size() - 66));
  unsigned_cose.push_back(0x40);
  std::vector<Case> cases = {
      {"malformed", a.topic("event"), to_bytes("\xff\x00garbage\x13")},
      {"unsigned", a.topic("event"),
       cbor::encode(cbor::from_json(Json{{"event", "start"}}).value())},
      {"unsigned", a.topic("event"), unsigned_cose},
      {"bad-signature", a.topic("event"), bad_sig},
      {"replay", a.topic("event"), a.rate_change(9.5)},  // re-signed below with sequence 1
      {"too-large", a.topic("event"), Bytes(70 * 1024, 0xa0)},
      {"topic-mismatch", a.topic("event"), b.rate_change(14)},
      {"topic-mismatch", a.topic("alarm"), a.rate_change(15)},
      {"content-type", a.topic("event"), {}},
  };
  cases[4].payload = a.event({{"event", "rate-change"}, {"rate_ml_h", 9.5}}, 1);
  {
    cose::StatementHeader h;
    h.content_type = "application/cbor";
    h.issuer = a.id;
    h.subject = "x";
    h.issued_at_s = unix_seconds();
    h.sequence = a.next_sequence++;
    cases[8].payload = cose::sign_statement(a.key, h, cbor::encode(cbor::Value::map({})));
  }
  std::map<std::string, uint64_t> counted_before;
  for (const auto& c : cases) counted_before[c.reason] = gateway_->refused(c.reason);
  std::map<std::string, uint64_t> want;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string corr = "case-" + std::to_string(i);
    ASSERT_TRUE(ca.publish(cases[i].topic, cases[i].payload, corr, a.topic("ack"), corr));
    auto err = ca.answer(a.topic("error"), corr);
    ASSERT_TRUE(err) << "no refusal for case " << i << " (" << cases[i].reason << ")\n"
                     << slurp(gateway_->log_path());
    EXPECT_EQ((*err)["reason"], cases[i].reason) << err->dump();
    EXPECT_EQ((*err)["type"], "urn:custos:problem:" + cases[i].reason);
    EXPECT_FALSE((*err)["detail"].get<std::string>().empty());
    want[cases[i].reason]++;
  }
  // Devices the ledger does not know or has revoked, each on its own topic.
  for (Device* d : {&unknown, &revoked}) {
    MqttClient c(*broker_, d->id, d->tls);
    ASSERT_TRUE(c.wait_connected());
    c.subscribe(d->topic("error"));
    ASSERT_TRUE(c.publish(d->topic("event"), d->rate_change(5), "x", d->topic("ack"), "dev"));
    auto err = c.answer(d->topic("error"), "dev");
    ASSERT_TRUE(err) << slurp(gateway_->log_path());
    const std::string reason = d == &unknown ? "unknown-key" : "revoked-key";
    EXPECT_EQ((*err)["reason"], reason) << err->dump();
    want[reason]++;
    counted_before.emplace(reason, 0);
  }
  for (const auto& [reason, n] : want) {
    EXPECT_GE(gateway_->refused(reason), counted_before[reason] + n) << reason;
  }
  EXPECT_EQ(log_size(*client_), size_before) << "a refused message was stored";
  EXPECT_NE(gateway_->metrics().find("custos_gateway_refused_total{reason=\"bad-signature\"}"),
            std::string::npos);
  // Still running, and a good message still goes through.
  Bytes after = a.rate_change(16);
  ASSERT_TRUE(ca.publish(a.topic("event"), after, "after", a.topic("ack"), "good-3"));
  auto ack = ca.answer(a.topic("ack"), "good-3");
  ASSERT_TRUE(ack);
  EXPECT_EQ((*ack)["status"], "registered");
}

// A redelivered message (same bytes) is answered, not refused as a replay,
// and is on the ledger once.
TEST_F(GatewayTest, DuplicateDeliveryIsAnsweredAlreadyRegistered) {
  Device d = device("dup");
  MqttClient c(*broker_, d.id, d.tls);
  ASSERT_TRUE(c.wait_connected());
  c.subscribe(d.topic("ack"));
  Bytes one = d.rate_change(20);
  Bytes two = d.rate_change(21);
  ASSERT_TRUE(c.publish(d.topic("event"), one, "1", d.topic("ack"), "d-1"));
  ASSERT_TRUE(c.publish(d.topic("event"), two, "2", d.topic("ack"), "d-2"));
  ASSERT_TRUE(c.answer(d.topic("ack"), "d-2"));
  ASSERT_TRUE(c.publish(d.topic("event"), one, "again", d.topic("ack"), "d-again"));
  auto ack = c.answer(d.topic("ack"), "d-again");
  ASSERT_TRUE(ack) << slurp(gateway_->log_path());
  EXPECT_EQ((*ack)["status"], "already-registered");
  EXPECT_EQ(entry_ids_by_issuer(*client_, d.id).size(), 2u);
}

// A device cannot point the gateway's answer at another device's topic:
// answers go to its own ack topic, whatever response topic it named.
TEST_F(GatewayTest, AnswersGoOnlyToTheDevicesOwnAckTopic) {
  Device a = device("resp-a");
  Device b = device("resp-b");
  MqttClient ca(*broker_, a.id, a.tls);
  MqttClient cb(*broker_, b.id, b.tls);
  ASSERT_TRUE(ca.wait_connected());
  ASSERT_TRUE(cb.wait_connected());
  ca.subscribe(a.topic("ack"));
  cb.subscribe(b.topic("ack"));
  ASSERT_TRUE(ca.publish(a.topic("event"), a.rate_change(3), "x", b.topic("ack"), "aimed-at-b"));
  auto ack = ca.answer(a.topic("ack"), "aimed-at-b");
  ASSERT_TRUE(ack) << slurp(gateway_->log_path());
  EXPECT_EQ((*ack)["status"], "registered");
  EXPECT_FALSE(cb.answer(b.topic("ack"), "aimed-at-b", std::chrono::milliseconds(500)));
}

// The will the broker publishes for a vanished device is counted, never
// registered.
TEST_F(GatewayTest, OfflineWillIsCountedNotRegistered) {
  Device d = device("will");
  const uint64_t before = gateway_->status().value("devices_offline", uint64_t{0});
  const std::string out = dir_->path() + "/" + d.id + ".sub";
  pid_t sub = spawn({"/usr/bin/mosquitto_sub",
                     "-V",
                     "mqttv5",
                     "-h",
                     "127.0.0.1",
                     "-p",
                     std::to_string(broker_->port()),
                     "--cafile",
                     broker_->dir() + "/ca.crt",
                     "--cert",
                     d.tls + ".crt",
                     "--key",
                     d.tls + ".key",
                     "-i",
                     d.id,
                     "-t",
                     d.topic("ack"),
                     "--will-topic",
                     d.topic("status"),
                     "--will-payload",
                     R"({"state":"offline"})",
                     "--will-qos",
                     "1",
                     "--will-retain"},
                    out, out);
  // Connected (the broker's log says so) before it dies.
  ASSERT_TRUE(eventually(
      [&] {
        return slurp(broker_->dir() + "/mosquitto.log").find(" as " + d.id + " ") !=
               std::string::npos;
      },
      std::chrono::seconds(15)))
      << slurp(out);
  ::kill(sub, SIGKILL);  // no DISCONNECT: the broker publishes the will
  wait_exit(sub);
  EXPECT_TRUE(
      eventually([&] { return gateway_->status().value("devices_offline", uint64_t{0}) > before; },
                 std::chrono::seconds(10)))
      << slurp(out) << slurp(gateway_->log_path());
  EXPECT_TRUE(entry_ids_by_issuer(*client_, d.id).empty());
}

// One node, one broker, the maker and one registered device: where the
// crash tests below start.
struct OneNodeRig {
  TempDir dir;
  std::unique_ptr<NodeProcess> node;
  std::unique_ptr<BrokerProcess> broker;
  std::optional<Maker> maker;
  std::optional<Device> device;

  ::testing::AssertionResult start(const std::string& device_id) {
    mosquitto_lib_init();
    std::filesystem::create_directories(dir.path() + "/node");
    node = std::make_unique<NodeProcess>(dir.path() + "/node");
    if (auto up = node->start(); !up) return up;
    broker = std::make_unique<BrokerProcess>(dir.path() + "/broker");
    if (auto up = broker->start(); !up) return up;
    maker = register_maker(dir.path(), *node);
    device = make_device(dir.path(), *node, *maker, *broker, device_id);
    return ::testing::AssertionSuccess();
  }
  // After start(): what a test uses.
  std::tuple<TempDir&, NodeProcess&, BrokerProcess&, Device&> parts() {
    return {dir, *node, *broker, *device};
  }
};

// The SDK's configuration for a rig's device, acks wanted, answers recorded
// (sequence number, JSON) as they come.
struct SdkDevice {
  struct Answers {
    std::mutex mu;
    std::vector<std::pair<uint64_t, Json>> got;
  } answers;
  std::string state, ca, cert, key;
  custos_device_config cfg{};

  SdkDevice(std::string state_dir, BrokerProcess& broker, const Device& d)
      : state(std::move(state_dir)),
        ca(broker.dir() + "/ca.crt"),
        cert(d.tls + ".crt"),
        key(d.tls + ".key") {
    cfg.device_id = d.id.c_str();
    cfg.site = "st-mary";
    cfg.unit = "icu";
    cfg.device_class = "infusion-pump";
    cfg.key_path = d.key_path.c_str();
    cfg.state_dir = state.c_str();
    cfg.host = "127.0.0.1";
    cfg.port = broker.port();
    cfg.ca_path = ca.c_str();
    cfg.cert_path = cert.c_str();
    cfg.cert_key_path = key.c_str();
    cfg.want_acks = 1;
    cfg.user = &answers;
    cfg.on_ack = [](custos_device*, const custos_ack* ack, void* user) {
      auto* a = static_cast<Answers*>(user);
      std::lock_guard<std::mutex> lock(a->mu);
      a->got.emplace_back(ack->sequence,
                          Json::parse(std::string(ack->json, ack->json_len), nullptr, false));
    };
  }
  size_t answered() {
    std::lock_guard<std::mutex> lock(answers.mu);
    return answers.got.size();
  }
};

// A program driving devices from one poll() (a simulator, custos-fleet)
// waits on custos_device_socket (with POLLOUT when custos_device_want_write)
// and runs a device's loop when its socket is ready (and every 100 ms or so
// for keepalives and resends; not here, so the socket alone must carry the
// connection, the publishes and every answer).
TEST(SdkDevice, DrivenByPollOnItsSocketGetsEveryAnswer) {
  OneNodeRig rig;
  ASSERT_TRUE(rig.start("polled-pump"));
  auto [dir, node, broker, d] = rig.parts();
  GatewayProcess gw(dir.path() + "/gw", broker, {node.url()});
  ASSERT_TRUE(gw.start());
  SdkDevice sdk(dir.path() + "/polled-state", broker, d);
  custos_device* dev = nullptr;
  ASSERT_EQ(custos_device_open(&sdk.cfg, &dev), CUSTOS_OK);
  EXPECT_EQ(custos_device_socket(dev), -1);  // no connection before the first loop
  EXPECT_EQ(custos_device_want_write(dev), 0);
  auto pump_until = [&](auto done) {
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < until && !done()) {
      const int fd = custos_device_socket(dev);
      if (fd < 0) {  // not connected: the loop connects
        custos_device_loop(dev, 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      pollfd p{fd, static_cast<short>(POLLIN | (custos_device_want_write(dev) ? POLLOUT : 0)), 0};
      if (::poll(&p, 1, 100) > 0) custos_device_loop(dev, 0);
    }
    return done();
  };
  ASSERT_TRUE(pump_until([&] { return custos_device_connected(dev) != 0; }));
  EXPECT_GE(custos_device_socket(dev), 0);
  custos_payload p;
  custos_payload_event(&p, "start");
  for (int64_t want = 1; want <= 3; ++want) ASSERT_EQ(custos_device_event(dev, &p, "inf-1"), want);
  EXPECT_TRUE(pump_until([&] { return sdk.answered() == 3 && custos_device_pending(dev) == 0; }))
      << slurp(gw.log_path());
  {
    std::lock_guard<std::mutex> lock(sdk.answers.mu);
    for (const auto& [sequence, answer] : sdk.answers.got)
      EXPECT_EQ(answer.value("status", ""), "registered") << sequence << " " << answer.dump();
  }
  EXPECT_EQ(entry_ids_by_issuer(*make_client(node.port()), d.id).size(), 3u);
  custos_device_close(dev);
  EXPECT_EQ(gw.stop(), 0);
}

// libmosquitto queues the PUBACK before on_message runs; the gateway's loop
// writes it only after the spool is synced. Killed inside on_message (before
// spooling), the gateway never acknowledged that message, so the broker
// delivers it again to the restarted gateway.
TEST(GatewayCrashTest, KilledInsideOnMessageLosesNothing) {
  OneNodeRig rig;
  ASSERT_TRUE(rig.start("crash-pump"));
  auto [dir, node, broker, d] = rig.parts();
  GatewayProcess gw(dir.path() + "/gw", broker, {node.url()});
  ASSERT_TRUE(gw.start(true, "kill-in-on-message=3"));
  MqttClient c(broker, d.id, d.tls);
  ASSERT_TRUE(c.wait_connected());
  std::vector<Bytes> sent;
  for (int i = 0; i < 5; ++i) {
    sent.push_back(d.rate_change(30 + i));
    ASSERT_TRUE(c.publish(d.topic("event"), sent.back(), std::to_string(i)));
  }
  ASSERT_TRUE(eventually([&] { return gw.exited(); }, std::chrono::seconds(20)))
      << slurp(gw.log_path());
  EXPECT_NE(slurp(gw.log_path()).find("fault injection"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return c.acked().size() == 5; }, std::chrono::seconds(10)));
  ASSERT_TRUE(gw.start());
  auto client = make_client(node.port());
  EXPECT_TRUE(all_on_ledger(*client, sent, std::chrono::seconds(30))) << slurp(gw.log_path());
  EXPECT_EQ(entry_ids_by_issuer(*client, d.id).size(), 5u);
  EXPECT_EQ(gw.stop(), 0);
}

// The SDK with acks wanted keeps a statement until the gateway answers it,
// not only until the broker's PUBACK: an answer sent while the device was
// away (its MQTT session is clean, so the broker keeps nothing for it) is
// asked for again by publishing the statement again, after the reconnect
// and after a while without an answer; the ledger holds it once.
TEST(GatewayCrashTest, AnAnswerLostWhileTheDeviceWasAwayIsAskedForAgain) {
  OneNodeRig rig;
  ASSERT_TRUE(rig.start("away-pump"));
  auto [dir, node, broker, d] = rig.parts();
  GatewayProcess gw(dir.path() + "/gw", broker, {node.url()});
  // Once, so the broker keeps the gateway's session (and queues for it)
  // while it is stopped.
  ASSERT_TRUE(gw.start());
  ASSERT_EQ(gw.stop(), 0);

  SdkDevice sdk(dir.path() + "/away-state", broker, d);
  sdk.cfg.answer_resend_ms = 300;
  auto& answers = sdk.answers;
  custos_device* dev = nullptr;
  ASSERT_EQ(custos_device_open(&sdk.cfg, &dev), CUSTOS_OK);
  auto loop_for = [&](std::chrono::milliseconds how_long, auto done) {
    const auto until = Clock::now() + how_long;
    while (Clock::now() < until && !done()) custos_device_loop(dev, 20);
    return done();
  };
  ASSERT_TRUE(
      loop_for(std::chrono::seconds(10), [&] { return custos_device_connected(dev) != 0; }));
  custos_payload p;
  custos_payload_event(&p, "start");
  ASSERT_EQ(custos_device_event(dev, &p, "infusion-1"), 1);
  // Nobody answers (the gateway is stopped): the broker took it, and the
  // device still holds it and publishes it again on its timer.
  loop_for(std::chrono::milliseconds(1500), [] { return false; });
  EXPECT_EQ(custos_device_pending(dev), 1u);
  // Away: the gateway registers it and answers into the void.
  ASSERT_EQ(custos_device_set_offline(dev, 1), CUSTOS_OK);
  ASSERT_TRUE(gw.start());
  auto client = make_client(node.port());
  ASSERT_TRUE(eventually([&] { return entry_ids_by_issuer(*client, d.id).size() == 1; },
                         std::chrono::seconds(20)))
      << slurp(gw.log_path());
  EXPECT_GE(gw.status().value("received", 0), 2) << "the timer did not publish it again";
  // Every copy handled and answered into the void before the device is
  // back (else the first answer could still reach it, which proves nothing).
  ASSERT_TRUE(eventually(
      [&] {
        Json st = gw.status();
        return st.value("spool_depth", 1) == 0 && st.value("registered", 0) >= 1;
      },
      std::chrono::seconds(20)))
      << gw.status().dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the outbox reaches the broker
  EXPECT_EQ(custos_device_pending(dev), 1u);
  {
    std::lock_guard<std::mutex> lock(answers.mu);
    EXPECT_TRUE(answers.got.empty());
  }
  // Back: published again at once, answered from the ledger.
  ASSERT_EQ(custos_device_set_offline(dev, 0), CUSTOS_OK);
  EXPECT_TRUE(loop_for(std::chrono::seconds(20), [&] { return custos_device_pending(dev) == 0; }))
      << slurp(gw.log_path());
  {
    std::lock_guard<std::mutex> lock(answers.mu);
    ASSERT_FALSE(answers.got.empty());
    EXPECT_EQ(answers.got.front().first, 1u);
    EXPECT_EQ(answers.got.front().second.value("status", ""), "already-registered");
  }
  EXPECT_EQ(entry_ids_by_issuer(*client, d.id).size(), 1u);
  custos_device_close(dev);
  EXPECT_EQ(gw.stop(), 0);
}

// Load from several devices while the gateway is SIGKILLed, the broker is
// restarted and the node is SIGKILLed: every message the broker PUBACKed to
// the publisher ends up on the ledger exactly once.
TEST(GatewayCrashTest, FaultsDuringLoadLoseNothingAcknowledged) {
  mosquitto_lib_init();
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/node");
  NodeProcess node(dir.path() + "/node");
  ASSERT_TRUE(node.start());
  BrokerProcess broker(dir.path() + "/broker");
  ASSERT_TRUE(broker.start());
  Maker maker = register_maker(dir.path(), node);
  constexpr int kDevices = 4;
  constexpr int kPerDevice = 150;
  std::vector<Device> devices;
  for (int i = 0; i < kDevices; ++i) {
    devices.push_back(make_device(dir.path(), node, maker, broker, "load-" + std::to_string(i)));
  }
  GatewayProcess gw(dir.path() + "/gw", broker, {node.url()});
  ASSERT_TRUE(gw.start());

  std::map<std::string, Bytes> by_tag;
  std::vector<std::unique_ptr<MqttClient>> clients;
  for (auto& d : devices) {
    clients.push_back(std::make_unique<MqttClient>(broker, d.id, d.tls));
    ASSERT_TRUE(clients.back()->wait_connected());
  }
  std::atomic<bool> done{false};
  std::thread publisher([&] {
    for (int i = 0; i < kPerDevice; ++i) {
      for (int k = 0; k < kDevices; ++k) {
        Bytes st = devices[k].rate_change(1 + (i % 100));
        const std::string tag = devices[k].id + "/" + std::to_string(i);
        by_tag[tag] = st;
        clients[k]->publish(devices[k].topic("event"), st, tag);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    done = true;
  });
  auto phase = [&](int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
  phase(800);
  EXPECT_EQ(gw.kill(), 128 + SIGKILL);  // gateway crash
  phase(400);
  ASSERT_TRUE(gw.start(false));
  phase(600);
  EXPECT_EQ(broker.stop(), 0);  // broker restart (saves its persistence)
  phase(300);
  ASSERT_TRUE(broker.start());
  phase(600);
  EXPECT_EQ(node.kill(), 128 + SIGKILL);  // node crash
  phase(500);
  ASSERT_TRUE(node.start());
  publisher.join();
  ASSERT_TRUE(done);
  // Let the clients finish their in-flight publishes, then drain.
  phase(2000);
  std::set<std::string> acked;
  for (auto& c : clients) {
    for (const auto& t : c->acked()) acked.insert(t);
  }
  ASSERT_GT(acked.size(), static_cast<size_t>(kDevices * kPerDevice / 2))
      << "the publisher saw too few PUBACKs for the test to mean much";
  ASSERT_TRUE(eventually([&] { return gw.status().value("spool_depth", 1) == 0; },
                         std::chrono::seconds(60)))
      << gw.status().dump() << slurp(gw.log_path());
  auto client = make_client(node.port());
  size_t missing = 0;
  for (const auto& tag : acked) {
    if (!on_ledger(*client, by_tag.at(tag))) {
      ++missing;
      ADD_FAILURE() << "acknowledged but not on the ledger: " << tag;
      if (missing > 5) break;
    }
  }
  size_t entries = 0;
  for (auto& d : devices) {
    auto ids = entry_ids_by_issuer(*client, d.id);
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
    entries += ids.size();
  }
  EXPECT_GE(entries, acked.size());
  EXPECT_LE(entries, by_tag.size());
  std::printf("[gateway] %zu published, %zu PUBACKed, %zu on the ledger; gateway: %s\n",
              by_tag.size(), acked.size(), entries, gw.status().dump().c_str());
  EXPECT_EQ(gw.stop(), 0) << slurp(gw.log_path());
}

// Records a stopped gateway left in its spool (acknowledged to the broker,
// not yet on the ledger) are read back by the next run and sent first, then
// new messages follow; each ends up on the ledger once.
TEST(GatewayCrashTest, RecordsLeftInTheSpoolAreReadBackByTheNextRun) {
  OneNodeRig rig;
  ASSERT_TRUE(rig.start("left-pump"));
  auto [dir, node, broker, d] = rig.parts();
  GatewayProcess gw(dir.path() + "/gw", broker, {node.url()});
  ASSERT_TRUE(gw.start());
  MqttClient c(broker, d.id, d.tls);
  ASSERT_TRUE(c.wait_connected());
  Bytes warm = d.rate_change(1);  // the lane caches the key while the node is up
  ASSERT_TRUE(c.publish(d.topic("event"), warm, "warm"));
  auto client = make_client(node.port());
  ASSERT_TRUE(eventually([&] { return on_ledger(*client, warm); }, std::chrono::seconds(20)))
      << slurp(gw.log_path());
  EXPECT_EQ(node.kill(), 128 + SIGKILL);
  std::vector<Bytes> sent;
  for (int i = 0; i < 5; ++i) {
    sent.push_back(d.rate_change(2 + i));
    ASSERT_TRUE(c.publish(d.topic("event"), sent.back(), std::to_string(i)));
  }
  ASSERT_TRUE(eventually([&] { return gw.status().value("spool_depth", 0) == 5; },
                         std::chrono::seconds(20)))
      << gw.status().dump();
  ASSERT_EQ(gw.stop(), 0);
  ASSERT_TRUE(node.start());
  ASSERT_TRUE(gw.start());
  for (int i = 0; i < 2; ++i) {
    sent.push_back(d.rate_change(7 + i));
    ASSERT_TRUE(c.publish(d.topic("event"), sent.back(), "new" + std::to_string(i)));
  }
  EXPECT_TRUE(all_on_ledger(*client, sent, std::chrono::seconds(30)))
      << gw.status().dump() << slurp(gw.log_path());
  const Json st = gw.status();
  EXPECT_EQ(st.value("spool_reads", -1), 5) << st.dump();
  EXPECT_EQ(st.value("spool_depth", -1), 0) << st.dump();
  EXPECT_EQ(entry_ids_by_issuer(*client, d.id).size(), 8u);
  EXPECT_EQ(gw.stop(), 0);
}

// With the node down the spool fills to its high-water mark and ingest
// pauses (the broker queues); with the node back, everything drains. The
// first node URL is dead for good: requests fail over to the second.
TEST(GatewayCrashTest, BackpressureAndFailoverLoseNothing) {
  OneNodeRig rig;
  ASSERT_TRUE(rig.start("bp-pump"));
  auto [dir, node, broker, d] = rig.parts();
  const std::string dead = "http://127.0.0.1:" + std::to_string(free_port());
  GatewayProcess gw(dir.path() + "/gw", broker, {dead, node.url()}, {"--spool-max-messages", "20"});
  ASSERT_TRUE(gw.start());
  // Warm the key cache while the node is up, then stop the node.
  MqttClient c(broker, d.id, d.tls);
  ASSERT_TRUE(c.wait_connected());
  Bytes warm = d.rate_change(1);
  ASSERT_TRUE(c.publish(d.topic("event"), warm, "warm"));
  auto client = make_client(node.port());
  ASSERT_TRUE(eventually([&] { return on_ledger(*client, warm); }, std::chrono::seconds(20)))
      << slurp(gw.log_path());
  EXPECT_GT(gw.status().value("node_failovers", 0), 0);
  EXPECT_EQ(node.kill(), 128 + SIGKILL);
  std::vector<Bytes> sent;
  for (int i = 0; i < 60; ++i) {
    sent.push_back(d.rate_change(2 + i));
    ASSERT_TRUE(c.publish(d.topic("event"), sent.back(), std::to_string(i)));
  }
  EXPECT_TRUE(eventually([&] { return gw.status().value("ingest_paused", false); },
                         std::chrono::seconds(20)))
      << gw.status().dump();
  EXPECT_LE(gw.status().value("spool_depth", 0), 20);
  ASSERT_TRUE(node.start());
  EXPECT_TRUE(all_on_ledger(*client, sent, std::chrono::seconds(60)))
      << gw.status().dump() << slurp(gw.log_path());
  EXPECT_EQ(entry_ids_by_issuer(*client, d.id).size(), 61u);
  EXPECT_EQ(gw.stop(), 0);
}

// A 4-node consortium: the gateway is given every node; the one it prefers
// is SIGKILLed during load and the batches fail over to the others. Every
// message the broker acknowledged ends up on the ledger of the survivors,
// once.
TEST(GatewayClusterTest, FailsOverWhenTheNodeInUseIsKilled) {
  mosquitto_lib_init();
  TempDir dir;
  Cluster cluster(dir, ClusterOptions{}, cluster_seed());
  ASSERT_TRUE(cluster.init(dir.path()));
  ASSERT_TRUE(cluster.start_all());
  BrokerProcess broker(dir.path() + "/broker");
  ASSERT_TRUE(broker.start());
  const std::string n0 = "http://127.0.0.1:" + std::to_string(cluster.api_port(0));
  Maker maker = register_maker(dir.path(), n0, cluster.dir() + "/admin/admin.key");
  std::vector<Device> devices;
  for (int i = 0; i < 2; ++i) {
    devices.push_back(
        make_device(dir.path(), cluster.api_port(0), maker, broker, "c-pump-" + std::to_string(i)));
  }
  std::vector<std::string> urls;
  for (size_t i = 0; i < cluster.size(); ++i) {
    urls.push_back("http://127.0.0.1:" + std::to_string(cluster.api_port(i)));
  }
  GatewayProcess gw(dir.path() + "/gw", broker, urls);
  ASSERT_TRUE(gw.start());
  std::vector<std::unique_ptr<MqttClient>> clients;
  for (auto& d : devices) {
    clients.push_back(std::make_unique<MqttClient>(broker, d.id, d.tls));
    ASSERT_TRUE(clients.back()->wait_connected());
  }
  std::map<std::string, Bytes> by_tag;
  constexpr int kRounds = 120;
  for (int r = 0; r < kRounds; ++r) {
    if (r == kRounds / 3) {
      EXPECT_EQ(cluster.kill(0), 128 + SIGKILL);
    }
    for (size_t k = 0; k < devices.size(); ++k) {
      Bytes st = devices[k].rate_change(1 + r % 50);
      const std::string tag = devices[k].id + "/" + std::to_string(r);
      by_tag[tag] = st;
      ASSERT_TRUE(clients[k]->publish(devices[k].topic("event"), st, tag));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(15));
  }
  std::set<std::string> acked;
  ASSERT_TRUE(eventually(
      [&] {
        acked.clear();
        for (auto& c : clients) {
          for (const auto& t : c->acked()) acked.insert(t);
        }
        return acked.size() == by_tag.size();
      },
      std::chrono::seconds(20)));
  ASSERT_TRUE(eventually([&] { return gw.status().value("spool_depth", 1) == 0; },
                         std::chrono::seconds(90)))
      << gw.status().dump() << slurp(gw.log_path());
  EXPECT_GT(gw.status().value("node_failovers", 0), 0) << gw.status().dump();
  auto client = make_client(cluster.api_port(1));
  for (const auto& [tag, st] : by_tag) {
    EXPECT_TRUE(on_ledger(*client, st)) << tag;
  }
  for (auto& d : devices) {
    auto ids = entry_ids_by_issuer(*client, d.id);
    EXPECT_EQ(ids.size(), static_cast<size_t>(kRounds)) << d.id;
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  }
  EXPECT_EQ(gw.stop(), 0);
}

}  // namespace
}  // namespace custos::integration
