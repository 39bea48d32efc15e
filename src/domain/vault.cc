#include "domain/vault.h"

#include <fcntl.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "codec/cbor.h"
#include "core/file.h"
#include "domain/clinical.h"
#include "domain/model.h"
#include "domain/payload.h"
#include "ledger/ledger.h"

namespace custos::domain {

namespace fs = std::filesystem;

namespace {

constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kVaultKeyBytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
// First byte of every sealed file: the format, so it can change later.
constexpr uint8_t kSealedVersion = 1;
constexpr size_t kSealedOverhead = 1 + kNonceBytes + kTagBytes;
// A sealed record: the content plus its salt, media type and CBOR framing.
constexpr size_t kRecordFileBytesMax = kVaultContentBytesMax + 1024 + kSealedOverhead;
constexpr size_t kMasterKeyFileBytesMax = 2 * kVaultKeyBytes + 1;
constexpr size_t kCursorFileBytesMax = 32;
// The erasure sweep records its log position when it moved this far.
constexpr uint64_t kErasureCursorStride = 4096;
// Additional data prefixes: a sealed key and a sealed record can never be
// taken for one another.
constexpr std::string_view kKeyContext = "custos-vault/patient-key/v1";
constexpr std::string_view kRecordContext = "custos-vault/record/v1";

Status io_error(const std::string& what) {
  return error(ErrorCode::kIo, what + ": " + std::strerror(errno));
}

void ensure_sodium() {
  static const bool kReady = sodium_init() >= 0;
  (void)kReady;
}

// --- Files ---

Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error(dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return io_error(dir);
  return Status();
}

// mkdir -p with mode 0700, each new directory's parent fsynced.
Status make_dirs(const std::string& dir) {
  if (file_exists(dir)) return Status();
  const std::string parent = fs::path(dir).parent_path().string();
  if (!parent.empty() && parent != dir) CUSTOS_RETURN_IF_ERROR(make_dirs(parent));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return io_error(dir);
  return parent.empty() ? Status() : fsync_dir(parent);
}

// Atomic (temporary file, fsync, rename) and durable (the directory fsynced).
Status write_durable(const std::string& path, ByteView data, unsigned mode = 0600) {
  CUSTOS_RETURN_IF_ERROR(write_file_atomic(path, data, mode));
  return fsync_dir(fs::path(path).parent_path().string());
}

// Overwrites a file with zeros before unlinking it, so the plain blocks do
// not simply stay behind on file systems that write in place.
Status shred_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? Status() : io_error(path);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const Bytes zeros(static_cast<size_t>(st.st_size), 0);
    if (::pwrite(fd, zeros.data(), zeros.size(), 0) < 0 || ::fsync(fd) != 0) {
      ::close(fd);
      return io_error(path);
    }
  }
  ::close(fd);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return io_error(path);
  return Status();
}

// flock(2) on vault/LOCK for the lifetime of the object. Each lock opens its
// own file description, so two threads of one process exclude each other
// as two processes do.
class FileLock {
 public:
  static Result<FileLock> take(const std::string& dir, bool exclusive) {
    const std::string path = dir + "/LOCK";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return io_error(path);
    while (::flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0) {
      if (errno == EINTR) continue;
      Status s = io_error(path);
      ::close(fd);
      return s;
    }
    return FileLock(fd);
  }
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// --- Sealing ---

Bytes additional_data(std::string_view context, std::string_view patient,
                      std::string_view record = {}) {
  Bytes ad;
  for (std::string_view part : {context, patient, record}) {
    ad.insert(ad.end(), part.begin(), part.end());
    ad.push_back(0);  // ids never hold NUL: the parts cannot run into each other
  }
  return ad;
}

Bytes seal(const SecretKey& key, ByteView plain, ByteView ad) {
  Bytes out(kSealedOverhead + plain.size());
  out[0] = kSealedVersion;
  uint8_t* nonce = out.data() + 1;
  randombytes_buf(nonce, kNonceBytes);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + 1 + kNonceBytes, &written, plain.data(),
                                             plain.size(), ad.data(), ad.size(), nullptr, nonce,
                                             key.bytes.data());
  out.resize(1 + kNonceBytes + written);
  return out;
}

// kCorruption when the bytes are not a sealed box of this key for this ad.
Result<Bytes> unseal(const SecretKey& key, ByteView sealed, ByteView ad, const std::string& what) {
  if (sealed.size() < kSealedOverhead || sealed[0] != kSealedVersion)
    return error(ErrorCode::kCorruption, what + ": not a sealed vault file");
  Bytes plain(sealed.size() - kSealedOverhead);
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          plain.data(), &n, nullptr, sealed.data() + 1 + kNonceBytes,
          sealed.size() - 1 - kNonceBytes, ad.data(), ad.size(), sealed.data() + 1,
          key.bytes.data()) != 0) {
    return error(ErrorCode::kCorruption,
                 what + ": does not decrypt (tampered, moved, or sealed under another key)");
  }
  plain.resize(n);
  return plain;
}

// --- Names ---

Status check_patient(const std::string& patient) {
  if (Status s = check_pseudonym(patient); !s.ok())
    return error(ErrorCode::kInvalidArgument, "patient: " + s.message());
  return Status();
}

Status check_record_id(const std::string& record) {
  if (Status s = check_id(record); !s.ok())
    return error(ErrorCode::kInvalidArgument, "record: " + s.message());
  return Status();
}

std::string record_file_name(const std::string& record) {
  return to_hex(as_view(record));
}

// --- Record plaintext: {"content": bstr, "content_type": tstr, "salt": bstr} ---

Bytes encode_record(const VaultRecord& r) {
  cbor::Map m;
  m.emplace_back(cbor::text("content"), cbor::Value::bytes(ByteView(r.content)));
  m.emplace_back(cbor::text("content_type"), cbor::text(r.content_type));
  m.emplace_back(cbor::text("salt"), cbor::Value::bytes(ByteView(r.salt)));
  return cbor::encode(cbor::Value::map(std::move(m)));
}

Result<VaultRecord> decode_record(ByteView plain, const std::string& what) {
  cbor::DecodeOptions options;
  options.max_depth = 2;
  auto v = cbor::decode(plain, options);
  const cbor::Value* content = v.ok() ? v->find("content") : nullptr;
  const cbor::Value* type = v.ok() ? v->find("content_type") : nullptr;
  const cbor::Value* salt = v.ok() ? v->find("salt") : nullptr;
  if (!content || !content->is(cbor::Type::kBytes) || !type || !type->is(cbor::Type::kText) ||
      !salt || !salt->is(cbor::Type::kBytes)) {
    return error(ErrorCode::kCorruption, what + ": decrypted record does not decode");
  }
  return VaultRecord{type->as_text(), salt->as_bytes(), content->as_bytes()};
}

bool same_record(const VaultRecord& a, const VaultRecord& b) {
  return a.content_type == b.content_type && a.salt == b.salt && a.content == b.content;
}

// --- Master key ---

Result<SecretKey> parse_master_key(const Bytes& text, const std::string& path) {
  std::string_view hex = as_string_view(text);
  if (!hex.empty() && hex.back() == '\n') hex.remove_suffix(1);
  auto bytes = from_hex(hex);
  if (!bytes.ok() || bytes->size() != kVaultKeyBytes) {
    return error(ErrorCode::kCorruption, path + ": not a vault master key (" +
                                             std::to_string(2 * kVaultKeyBytes) + " hex digits)");
  }
  SecretKey key;
  std::copy(bytes->begin(), bytes->end(), key.bytes.begin());
  sodium_memzero(bytes->data(), bytes->size());
  return key;
}

bool has_patients(const std::string& vault_dir) {
  std::error_code ec;
  return fs::exists(vault_dir + "/p", ec) && !fs::is_empty(vault_dir + "/p", ec);
}

Result<SecretKey> load_or_create_master_key(const std::string& path, const std::string& vault_dir) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      return error(ErrorCode::kPolicy, path +
                                           " is readable or writable by others than its owner; "
                                           "it is the node's secret: chmod 600 it");
    }
    CUSTOS_ASSIGN_OR_RETURN(Bytes text, read_file(path, kMasterKeyFileBytesMax));
    return parse_master_key(text, path);
  }
  if (errno != ENOENT) return io_error(path);
  if (has_patients(vault_dir)) {
    return error(ErrorCode::kCorruption, path + " is missing but " + vault_dir +
                                             " holds patient keys sealed under it; restore it "
                                             "from the backup (a new key could not open them)");
  }
  SecretKey key;
  randombytes_buf(key.bytes.data(), key.bytes.size());
  std::string hex = to_hex(ByteView(key.bytes.data(), key.bytes.size())) + "\n";
  Status s = write_durable(path, as_view(hex), 0600);
  sodium_memzero(hex.data(), hex.size());
  CUSTOS_RETURN_IF_ERROR(s);
  return key;
}

}  // namespace

SecretKey::~SecretKey() {
  sodium_memzero(bytes.data(), bytes.size());
}

Result<Vault> Vault::open(const std::string& data_dir) {
  ensure_sodium();
  const std::string dir = data_dir + "/" + kVaultDirName;
  CUSTOS_RETURN_IF_ERROR(make_dirs(dir));
  // Under the lock: two first opens must not both create a master key.
  CUSTOS_ASSIGN_OR_RETURN(FileLock lock, FileLock::take(dir, /*exclusive=*/true));
  CUSTOS_ASSIGN_OR_RETURN(SecretKey master,
                          load_or_create_master_key(data_dir + "/" + kVaultMasterKeyName, dir));
  return Vault(dir, std::move(master));
}

std::string Vault::patient_dir(const std::string& patient) const {
  return dir_ + "/p/" + patient.substr(kPseudonymPrefix.size());
}

Result<SecretKey> Vault::load_patient_key(const std::string& patient) const {
  const std::string path = patient_dir(patient) + "/key";
  auto sealed = read_file(path, kSealedOverhead + kVaultKeyBytes);
  if (!sealed.ok() && sealed.status().code() == ErrorCode::kNotFound) {
    // Records whose key is gone: destroyed by an erasure (and the records
    // put back from a copy) or lost; either way they cannot be read.
    return error(ErrorCode::kCorruption, path + ": the patient's key is gone");
  }
  CUSTOS_RETURN_IF_ERROR(sealed.status());
  CUSTOS_ASSIGN_OR_RETURN(Bytes plain,
                          unseal(master_, *sealed, additional_data(kKeyContext, patient), path));
  if (plain.size() != kVaultKeyBytes)
    return error(ErrorCode::kCorruption, path + ": a patient key is 32 bytes");
  SecretKey key;
  std::copy(plain.begin(), plain.end(), key.bytes.begin());
  sodium_memzero(plain.data(), plain.size());
  return key;
}

Result<SecretKey> Vault::create_patient_key(const std::string& patient) const {
  CUSTOS_ASSIGN_OR_RETURN(size_t existing, count_records(patient));
  if (existing > 0) {
    return error(ErrorCode::kCorruption, patient_dir(patient) +
                                             ": records without the patient's key; restore the "
                                             "key file from the backup");
  }
  SecretKey key;
  randombytes_buf(key.bytes.data(), key.bytes.size());
  CUSTOS_RETURN_IF_ERROR(make_dirs(patient_dir(patient) + "/r"));
  Bytes sealed = seal(master_, ByteView(key.bytes.data(), key.bytes.size()),
                      additional_data(kKeyContext, patient));
  CUSTOS_RETURN_IF_ERROR(write_durable(patient_dir(patient) + "/key", sealed));
  return key;
}

Result<size_t> Vault::count_records(const std::string& patient) const {
  const std::string dir = patient_dir(patient) + "/r";
  std::error_code ec;
  if (!fs::exists(dir, ec)) return size_t{0};
  size_t n = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".tmp") ++n;
  }
  if (ec) return error(ErrorCode::kIo, dir + ": " + ec.message());
  return n;
}

Result<VaultRecord> Vault::read_record(const std::string& patient, const std::string& record,
                                       const Bytes& sealed) const {
  const std::string what = "vault record " + patient + "/" + record;
  CUSTOS_ASSIGN_OR_RETURN(SecretKey key, load_patient_key(patient));
  CUSTOS_ASSIGN_OR_RETURN(
      Bytes plain, unseal(key, sealed, additional_data(kRecordContext, patient, record), what));
  auto r = decode_record(plain, what);
  sodium_memzero(plain.data(), plain.size());
  return r;
}

Status Vault::store_record(const std::string& patient, const std::string& record,
                           const VaultRecord& r) const {
  SecretKey key;
  if (file_exists(patient_dir(patient) + "/key")) {
    CUSTOS_ASSIGN_OR_RETURN(key, load_patient_key(patient));
  } else {
    CUSTOS_ASSIGN_OR_RETURN(key, create_patient_key(patient));
  }
  Bytes plain = encode_record(r);
  Bytes sealed = seal(key, plain, additional_data(kRecordContext, patient, record));
  sodium_memzero(plain.data(), plain.size());
  return write_durable(patient_dir(patient) + "/r/" + record_file_name(record), sealed);
}

Status Vault::put(const std::string& patient, const std::string& record,
                  const VaultRecord& r) const {
  CUSTOS_RETURN_IF_ERROR(check_patient(patient));
  CUSTOS_RETURN_IF_ERROR(check_record_id(record));
  if (r.salt.size() != kSaltBytes) {
    return error(ErrorCode::kInvalidArgument,
                 "salt must be " + std::to_string(kSaltBytes) + " random bytes");
  }
  if (r.content.size() > kVaultContentBytesMax) {
    return error(ErrorCode::kTooLarge, "content of " + std::to_string(r.content.size()) +
                                           " bytes exceeds " +
                                           std::to_string(kVaultContentBytesMax));
  }
  if (Status s = check_media_type(r.content_type); !s.ok())
    return error(ErrorCode::kInvalidArgument, "content type: " + s.message());
  CUSTOS_ASSIGN_OR_RETURN(FileLock lock, FileLock::take(dir_, /*exclusive=*/true));
  if (file_exists(patient_dir(patient) + "/erased")) {
    return error(ErrorCode::kConflict, "the content of patient '" + patient + "' was erased");
  }
  const std::string path = patient_dir(patient) + "/r/" + record_file_name(record);
  auto existing = read_file(path, kRecordFileBytesMax);
  if (existing.ok()) {
    CUSTOS_ASSIGN_OR_RETURN(VaultRecord stored, read_record(patient, record, *existing));
    if (same_record(stored, r)) return Status();
    return error(ErrorCode::kConflict,
                 "record '" + record + "' of patient '" + patient + "' holds other content");
  }
  if (existing.status().code() != ErrorCode::kNotFound) return existing.status();
  CUSTOS_ASSIGN_OR_RETURN(size_t count, count_records(patient));
  if (count >= kRecordsPerPatientMax) {
    return error(ErrorCode::kTooLarge, "patient '" + patient + "' has " +
                                           std::to_string(kRecordsPerPatientMax) +
                                           " records in the vault already");
  }
  return store_record(patient, record, r);
}

Result<VaultLookup> Vault::get(const std::string& patient, const std::string& record,
                               VaultRecord* out) const {
  CUSTOS_RETURN_IF_ERROR(check_patient(patient));
  CUSTOS_RETURN_IF_ERROR(check_record_id(record));
  CUSTOS_ASSIGN_OR_RETURN(FileLock lock, FileLock::take(dir_, /*exclusive=*/false));
  if (file_exists(patient_dir(patient) + "/erased")) return VaultLookup::kErased;
  auto sealed =
      read_file(patient_dir(patient) + "/r/" + record_file_name(record), kRecordFileBytesMax);
  if (!sealed.ok()) {
    if (sealed.status().code() == ErrorCode::kNotFound) return VaultLookup::kMissing;
    return sealed.status();
  }
  CUSTOS_ASSIGN_OR_RETURN(*out, read_record(patient, record, *sealed));
  return VaultLookup::kFound;
}

Result<bool> Vault::erased(const std::string& patient) const {
  CUSTOS_RETURN_IF_ERROR(check_patient(patient));
  CUSTOS_ASSIGN_OR_RETURN(FileLock lock, FileLock::take(dir_, /*exclusive=*/false));
  return file_exists(patient_dir(patient) + "/erased");
}

Status Vault::check_capacity(const std::string& patient) const {
  CUSTOS_RETURN_IF_ERROR(check_patient(patient));
  CUSTOS_ASSIGN_OR_RETURN(FileLock lock, FileLock::take(dir_, /*exclusive=*/false));
  if (file_exists(patient_dir(patient) + "/erased"))
    return error(ErrorCode::kConflict, "the content of patient '" + patient + "' was erased");
  CUSTOS_ASSIGN_OR_RETURN(size_t count, count_records(patient));
  if (count >= kRecordsPerPatientMax) {
    return error(ErrorCode::kTooLarge, "patient '" + patient + "' has " +
                                           std::to_string(kRecordsPerPatientMax) +
                                           " records in the vault already");
  }
  return Status();
}

// The tombstone first (no put may start again), then the key (the shred
// itself), then the records. Each step is idempotent, so an erasure cut by a
// crash is finished by the next one.
Status Vault::destroy(const std::string& patient) const {
  const std::string dir = patient_dir(patient);
  CUSTOS_RETURN_IF_ERROR(make_dirs(dir));
  if (!file_exists(dir + "/erased")) CUSTOS_RETURN_IF_ERROR(write_durable(dir + "/erased", {}));
  CUSTOS_RETURN_IF_ERROR(shred_file(dir + "/key"));
  CUSTOS_RETURN_IF_ERROR(fsync_dir(dir));
  const std::string records = dir + "/r";
  std::error_code ec;
  if (!fs::exists(records, ec)) return Status();
  std::vector<fs::path> files;
  for (fs::directory_iterator it(records, ec), end; !ec && it != end; it.increment(ec))
    files.push_back(it->path());
  if (ec) return error(ErrorCode::kIo, records + ": " + ec.message());
  for (const auto& f : files) {
    if (::unlink(f.c_str()) != 0 && errno != ENOENT) return io_error(f.string());
  }
  return fsync_dir(records);
}

Status Vault::erase(const std::string& patient) const {
  CUSTOS_RETURN_IF_ERROR(check_patient(patient));
  CUSTOS_ASSIGN_OR_RETURN(FileLock lock, FileLock::take(dir_, /*exclusive=*/true));
  return destroy(patient);
}

Result<size_t> Vault::apply_erasures(const ledger::Ledger& ledger) const {
  CUSTOS_ASSIGN_OR_RETURN(FileLock lock, FileLock::take(dir_, /*exclusive=*/true));
  const std::string cursor_path = dir_ + "/erasures";
  uint64_t cursor = 0;
  if (auto text = read_file(cursor_path, kCursorFileBytesMax); text.ok()) {
    std::string_view t = as_string_view(*text);
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), cursor);
    if (ec != std::errc()) return error(ErrorCode::kCorruption, cursor_path + ": not a log index");
  } else if (text.status().code() != ErrorCode::kNotFound) {
    return text.status();
  }
  // Everything below this size is in the pages read below (the query sees
  // at least this much of the log).
  const uint64_t log_size = ledger.head().log_size;
  if (cursor >= log_size) return size_t{0};
  ledger::Query q;
  q.content_type = std::string(kTypeRecordErasure);
  q.cursor = cursor;
  q.limit = limits::kQueryPageEntriesMax;
  size_t applied = 0;
  for (;;) {
    CUSTOS_ASSIGN_OR_RETURN(ledger::QueryPage page, ledger.query(q));
    for (const auto& e : page.entries) {
      CUSTOS_ASSIGN_OR_RETURN(cose::Statement st, cose::parse_statement(e.statement));
      CUSTOS_ASSIGN_OR_RETURN(RecordErasureStatement erasure, parse_record_erasure(st));
      CUSTOS_RETURN_IF_ERROR(destroy(erasure.patient));
      ++applied;
    }
    if (!page.next_cursor) break;
    q.cursor = *page.next_cursor;
  }
  // Looking again at a few entries is harmless (erasing is idempotent), so
  // the position is synced only when it moved far or something was erased:
  // a sweep that finds nothing costs no fsync.
  if (applied > 0 || log_size - cursor >= kErasureCursorStride) {
    CUSTOS_RETURN_IF_ERROR(write_durable(cursor_path, as_view(std::to_string(log_size) + "\n")));
  }
  return applied;
}

VaultSweeper::VaultSweeper(const ledger::Ledger& ledger, uint64_t interval_ms)
    : ledger_(ledger), interval_ms_(interval_ms) {
  sweep();
  thread_ = std::thread([this] { run(); });
}

VaultSweeper::~VaultSweeper() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void VaultSweeper::sweep() {
  auto vault = Vault::open(ledger_.data_dir());
  Result<size_t> applied = vault.ok() ? vault->apply_erasures(ledger_) : vault.status();
  if (!applied.ok()) {
    spdlog::error("vault: erasure sweep failed (retried in {} ms): {}", interval_ms_,
                  applied.status().to_string());
  } else if (*applied > 0) {
    spdlog::info("vault: applied {} record erasure(s) found on the ledger", *applied);
  }
}

void VaultSweeper::run() {
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [&] { return stopping_; })) {
    lock.unlock();
    sweep();
    lock.lock();
  }
}

}  // namespace custos::domain
