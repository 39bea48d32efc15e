// The C device SDK against custos's own C++ code: its statements parse and
// verify, its CBOR is byte for byte what the custos encoder writes, its
// sequence numbers survive a restart, and its queue survives being offline.
#include <gtest/gtest.h>
#include <mosquitto.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "codec/cbor.h"
#include "cose/statement.h"
#include "custos_device.h"
#include "support/temp_dir.h"

namespace custos {
namespace {

std::string write_key(const testutil::TempDir& dir, const crypto::PrivateKey& key,
                      const std::string& name) {
  const std::string path = dir.path() + "/" + name;
  std::ofstream(path) << key.to_pem();
  return path;
}

Bytes finish(const custos_payload& p) {
  Bytes out(CUSTOS_PAYLOAD_BYTES_MAX);
  long n = custos_payload_finish(&p, out.data(), out.size());
  EXPECT_GE(n, 0) << custos_strerror(static_cast<int>(n));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

class SdkStatement : public ::testing::TestWithParam<crypto::Algorithm> {};

TEST_P(SdkStatement, ParsesAndVerifiesWithCustos) {
  testutil::TempDir dir;
  auto key = crypto::PrivateKey::generate(GetParam()).value();
  custos_key* k = nullptr;
  ASSERT_EQ(custos_key_load(write_key(dir, key, "k.pem").c_str(), &k), CUSTOS_OK);
  uint8_t kid[32];
  custos_key_kid(k, kid);
  EXPECT_TRUE(std::equal(kid, kid + 32, key.public_key().kid().begin()));
  uint8_t spki[256];
  long spki_len = custos_key_spki(k, spki, sizeof spki);
  ASSERT_GT(spki_len, 0);
  EXPECT_EQ(Bytes(spki, spki + spki_len), key.public_key().spki_der());

  custos_payload p;
  custos_payload_event(&p, "programming");
  custos_payload_text(&p, "drug", "heparin");
  custos_payload_number(&p, "rate_ml_h", 12.5);
  custos_payload_number(&p, "vtbi_ml", 250);
  custos_payload_quantity(&p, "dose", 1000, "[iU]/h");
  custos_payload_text(&p, "drug_library", "2025.3");
  Bytes body = finish(p);
  custos_header h{CUSTOS_TYPE_DEVICE_EVENT, "pump-17", "infusion-1", 1795000000, 42};
  Bytes out(CUSTOS_STATEMENT_BYTES_MAX);
  long n = custos_sign_statement(k, &h, body.data(), body.size(), out.data(), out.size());
  ASSERT_GT(n, 0);
  out.resize(static_cast<size_t>(n));
  auto st = cose::parse_statement(out);
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ(st->header.issuer, "pump-17");
  EXPECT_EQ(st->header.subject, "infusion-1");
  EXPECT_EQ(st->header.sequence, 42u);
  EXPECT_EQ(st->header.issued_at_s, 1795000000u);
  EXPECT_EQ(st->header.content_type, CUSTOS_TYPE_DEVICE_EVENT);
  EXPECT_TRUE(cose::verify_statement(*st, key.public_key()).ok());
  // What custos itself would have signed over the same header and payload
  // has the same protected header and payload bytes.
  cose::StatementHeader ch;
  ch.content_type = CUSTOS_TYPE_DEVICE_EVENT;
  ch.issuer = "pump-17";
  ch.subject = "infusion-1";
  ch.issued_at_s = 1795000000;
  ch.sequence = 42;
  auto mine = cose::parse_statement(cose::sign_statement(key, ch, body)).value();
  EXPECT_EQ(mine.sign1.protected_bytes, st->sign1.protected_bytes);
  custos_key_free(k);
}

INSTANTIATE_TEST_SUITE_P(Algorithms, SdkStatement,
                         ::testing::Values(crypto::Algorithm::kES256, crypto::Algorithm::kEd25519));

TEST(SdkCbor, FloatsAreTheShortestExactFormLikeCustos) {
  std::mt19937_64 rng(7);
  std::vector<double> values = {0.0,
                                -0.0,
                                1.0,
                                1.5,
                                12.5,
                                65504.0,
                                65505.0,
                                100000.0,
                                1e-5,
                                5.960464477539063e-08,
                                6.103515625e-05,
                                3.4028234663852886e+38,
                                1e300,
                                -2.5,
                                0.1,
                                1.0 / 3};
  for (int i = 0; i < 2000; ++i) {
    switch (i % 3) {
      case 0:
        values.push_back(
            std::ldexp(static_cast<double>(rng() % 2048), static_cast<int>(rng() % 60) - 40));
        break;
      case 1:
        values.push_back(static_cast<double>(static_cast<float>(std::ldexp(
            static_cast<double>(rng() % (1u << 24)), static_cast<int>(rng() % 200) - 150))));
        break;
      default: {
        double d;
        uint64_t bits = rng();
        std::memcpy(&d, &bits, sizeof d);
        if (std::isfinite(d)) values.push_back(d);
      }
    }
  }
  for (double v : values) {
    uint8_t buf[16];
    custos_cbor c;
    custos_cbor_init(&c, buf, sizeof buf);
    custos_cbor_float(&c, v);
    ASSERT_EQ(c.err, 0);
    EXPECT_EQ(Bytes(buf, buf + c.len), cbor::encode(cbor::Value::float64(v))) << v;
  }
  uint8_t buf[16];
  custos_cbor c;
  custos_cbor_init(&c, buf, sizeof buf);
  custos_cbor_float(&c, NAN);
  EXPECT_EQ(c.err, CUSTOS_EINVAL);
}

TEST(SdkCbor, PayloadIsDeterministicAndRefusesDuplicates) {
  custos_payload p;
  custos_payload_event(&p, "alarm");
  custos_payload_text(&p, "priority", "high");
  custos_payload_text(&p, "alarm", "occlusion-downstream");
  custos_payload_int(&p, "battery_pct", -3);
  custos_payload_limit(&p, "soft", "upper", 20.5, "mL/h");
  custos_payload_bool(&p, "b", 1);
  Bytes body = finish(p);
  auto v = cbor::decode(body);  // strict: deterministic or refused
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(cbor::encode(*v), body);
  EXPECT_EQ(v->find("event")->as_text(), "alarm");
  EXPECT_EQ(v->find("limit")->find("value")->as_float(), 20.5);
  custos_payload_text(&p, "alarm", "again");
  uint8_t out[CUSTOS_PAYLOAD_BYTES_MAX];
  EXPECT_EQ(custos_payload_finish(&p, out, sizeof out), CUSTOS_EINVAL);
  custos_payload big;
  custos_payload_init(&big);
  for (int i = 0; i < 40; ++i) custos_payload_int(&big, ("k" + std::to_string(i)).c_str(), i);
  EXPECT_EQ(custos_payload_finish(&big, out, sizeof out), CUSTOS_ETOOBIG);
}

TEST(SdkSequence, NeverReusesANumberAcrossRestarts) {
  testutil::TempDir dir;
  const std::string path = dir.path() + "/seq";
  custos_sequence s;
  uint64_t n = 0;
  ASSERT_EQ(custos_sequence_open(&s, path.c_str(), 1), CUSTOS_OK);
  for (uint64_t want = 1; want <= 3; ++want) {
    ASSERT_EQ(custos_sequence_take(&s, &n), CUSTOS_OK);
    EXPECT_EQ(n, want);
  }
  ASSERT_EQ(custos_sequence_open(&s, path.c_str(), 10), CUSTOS_OK);  // a restart
  ASSERT_EQ(custos_sequence_take(&s, &n), CUSTOS_OK);
  EXPECT_EQ(n, 4u);
  ASSERT_EQ(custos_sequence_take(&s, &n), CUSTOS_OK);
  EXPECT_EQ(n, 5u);
  // A crash now: 6..13 were reserved, so the next run starts at 14 (a gap,
  // never a reuse).
  ASSERT_EQ(custos_sequence_open(&s, path.c_str(), 1), CUSTOS_OK);
  ASSERT_EQ(custos_sequence_take(&s, &n), CUSTOS_OK);
  EXPECT_EQ(n, 14u);
  // Blocks are reserved at open already (the first event waits for no
  // fsync): a run that takes nothing still moves the next run on.
  ASSERT_EQ(custos_sequence_open(&s, path.c_str(), 100), CUSTOS_OK);
  EXPECT_EQ(s.reserved, 114u);
  ASSERT_EQ(custos_sequence_open(&s, path.c_str(), 1), CUSTOS_OK);
  ASSERT_EQ(custos_sequence_take(&s, &n), CUSTOS_OK);
  EXPECT_EQ(n, 115u);
  std::ofstream(path) << "garbage";
  EXPECT_EQ(custos_sequence_open(&s, path.c_str(), 1), CUSTOS_EIO);
}

// A device of st-mary's ICU with a fresh key under `dir`, pointed at a port
// nothing listens on (offline). Keeps the strings the config points to.
struct OfflineDevice {
  OfflineDevice(const testutil::TempDir& dir, const char* id)
      : key_path(write_key(dir, crypto::PrivateKey::generate(crypto::Algorithm::kEd25519).value(),
                           std::string(id) + ".pem")),
        state(dir.path() + "/state-" + id) {
    cfg.device_id = id;
    cfg.site = "st-mary";
    cfg.unit = "icu";
    cfg.device_class = "infusion-pump";
    cfg.key_path = key_path.c_str();
    cfg.state_dir = state.c_str();
    cfg.host = "127.0.0.1";
    cfg.port = 1;
  }
  OfflineDevice(const OfflineDevice&) = delete;
  OfflineDevice& operator=(const OfflineDevice&) = delete;
  std::string key_path, state;
  custos_device_config cfg{};
};

TEST(SdkDevice, QueuesOnDiskWhileOfflineAndKeepsItAcrossRestarts) {
  mosquitto_lib_init();
  testutil::TempDir dir;
  OfflineDevice pump(dir, "pump-1");
  custos_device_config& cfg = pump.cfg;
  cfg.queue_messages_max = 4;
  custos_device* dev = nullptr;
  ASSERT_EQ(custos_device_open(&cfg, &dev), CUSTOS_OK);
  custos_payload p;
  custos_payload_event(&p, "start");
  for (int64_t want = 1; want <= 3; ++want) EXPECT_EQ(custos_device_event(dev, &p, nullptr), want);
  EXPECT_NE(custos_device_loop(dev, 0), CUSTOS_OK);
  EXPECT_EQ(custos_device_pending(dev), 3u);
  custos_device_close(dev);
  ASSERT_EQ(custos_device_open(&cfg, &dev), CUSTOS_OK);
  EXPECT_EQ(custos_device_pending(dev), 3u);
  EXPECT_EQ(custos_device_event(dev, &p, nullptr), 4);
  EXPECT_EQ(custos_device_event(dev, &p, nullptr), CUSTOS_EFULL);
  custos_device_close(dev);
  custos_device_config bad = cfg;
  bad.device_id = "pump/1";
  EXPECT_EQ(custos_device_open(&bad, &dev), CUSTOS_EINVAL);
  custos_device_config slow = cfg;
  slow.answer_resend_ms = CUSTOS_ANSWER_RESEND_MS_MAX + 1;
  EXPECT_EQ(custos_device_open(&slow, &dev), CUSTOS_EINVAL) << "resend wait over its limit";
  // A simulator's device keeps its queue in memory: nothing survives it.
  custos_device_config sim = cfg;
  sim.device_id = "sim-1";
  const std::string sim_state = dir.path() + "/sim";
  sim.state_dir = sim_state.c_str();
  sim.memory_queue = 1;
  sim.sequence_block = 1000;
  ASSERT_EQ(custos_device_open(&sim, &dev), CUSTOS_OK);
  EXPECT_EQ(custos_device_event(dev, &p, nullptr), 1);
  EXPECT_EQ(custos_device_pending(dev), 1u);
  custos_device_close(dev);
  ASSERT_EQ(custos_device_open(&sim, &dev), CUSTOS_OK);
  EXPECT_EQ(custos_device_pending(dev), 0u);
  EXPECT_EQ(custos_device_event(dev, &p, nullptr), 1001) << "a restart skips the reserved block";
  custos_device_close(dev);
}

// A simulator's network loss: while offline the device queues and never
// tries to connect; back online it tries at once (here the attempt fails
// early, on the missing TLS files, which tells it from "not trying").
TEST(SdkDevice, OfflineQueuesAndDoesNotConnectUntilBack) {
  mosquitto_lib_init();
  testutil::TempDir dir;
  OfflineDevice pump(dir, "pump-2");
  custos_device_config& cfg = pump.cfg;
  cfg.memory_queue = 1;
  custos_device* dev = nullptr;
  ASSERT_EQ(custos_device_open(&cfg, &dev), CUSTOS_OK);
  EXPECT_EQ(custos_device_set_offline(nullptr, 1), CUSTOS_EINVAL);
  EXPECT_EQ(custos_device_set_offline(dev, 1), CUSTOS_OK);
  custos_payload p;
  custos_payload_event(&p, "status");
  for (int64_t want = 1; want <= 3; ++want) EXPECT_EQ(custos_device_event(dev, &p, nullptr), want);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(custos_device_loop(dev, 0), CUSTOS_ENOTCONN);
  EXPECT_EQ(custos_device_connected(dev), 0);
  EXPECT_EQ(custos_device_pending(dev), 3u);
  EXPECT_EQ(custos_device_set_offline(dev, 0), CUSTOS_OK);
  EXPECT_EQ(custos_device_loop(dev, 0), CUSTOS_EINVAL);    // an attempt, at once
  EXPECT_EQ(custos_device_loop(dev, 0), CUSTOS_ENOTCONN);  // then the backoff
  // Offline and back again: the backoff is forgotten, the next loop tries.
  EXPECT_EQ(custos_device_set_offline(dev, 1), CUSTOS_OK);
  EXPECT_EQ(custos_device_set_offline(dev, 0), CUSTOS_OK);
  EXPECT_EQ(custos_device_loop(dev, 0), CUSTOS_EINVAL);
  EXPECT_EQ(custos_device_pending(dev), 3u);
  custos_device_close(dev);
}

}  // namespace
}  // namespace custos
