/* Keys and COSE_Sign1 statements (docs/formats.md section 2). */
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "custos_device.h"

#define COSE_ALG_ES256 (-7)
#define COSE_ALG_ED25519 (-19)
#define SPKI_BYTES_MAX 128u
#define PROTECTED_BYTES_MAX 1024u
#define SIG_BYTES 64u

struct custos_key {
  EVP_PKEY* pkey;
  int alg;
  uint8_t ed_secret[crypto_sign_SECRETKEYBYTES]; /* Ed25519: libsodium's form */
  uint8_t spki[SPKI_BYTES_MAX];
  size_t spki_len;
  uint8_t kid[32];
};

const char* custos_strerror(int code) {
  switch (code) {
    case CUSTOS_OK:
      return "ok";
    case CUSTOS_EINVAL:
      return "invalid argument";
    case CUSTOS_EKEY:
      return "key file missing, unreadable or not ES256/Ed25519";
    case CUSTOS_ETOOBIG:
      return "over a size limit";
    case CUSTOS_EIO:
      return "file system error";
    case CUSTOS_EFULL:
      return "offline queue full";
    case CUSTOS_ECRYPTO:
      return "signing failed";
    case CUSTOS_EMQTT:
      return "MQTT library error";
    case CUSTOS_ENOTCONN:
      return "not connected";
    default:
      return "unknown error";
  }
}

int custos_key_load(const char* pem_path, custos_key** out) {
  FILE* f;
  EVP_PKEY* pkey;
  custos_key* k;
  unsigned char* p;
  int len;
  if (!pem_path || !out) return CUSTOS_EINVAL;
  if (sodium_init() < 0) return CUSTOS_ECRYPTO;
  f = fopen(pem_path, "rb");
  if (!f) return CUSTOS_EKEY;
  pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
  fclose(f);
  if (!pkey) return CUSTOS_EKEY;
  k = calloc(1, sizeof *k);
  if (!k) {
    EVP_PKEY_free(pkey);
    return CUSTOS_EIO;
  }
  k->pkey = pkey;
  if (EVP_PKEY_is_a(pkey, "ED25519")) {
    uint8_t seed[32], pk[crypto_sign_PUBLICKEYBYTES];
    size_t seed_len = sizeof seed;
    if (EVP_PKEY_get_raw_private_key(pkey, seed, &seed_len) != 1 || seed_len != 32 ||
        crypto_sign_seed_keypair(pk, k->ed_secret, seed) != 0) {
      custos_key_free(k);
      return CUSTOS_EKEY;
    }
    sodium_memzero(seed, sizeof seed);
    k->alg = COSE_ALG_ED25519;
  } else if (EVP_PKEY_is_a(pkey, "EC") && EVP_PKEY_get_bits(pkey) == 256) {
    k->alg = COSE_ALG_ES256;
  } else {
    custos_key_free(k);
    return CUSTOS_EKEY;
  }
  len = i2d_PUBKEY(pkey, NULL);
  if (len <= 0 || (size_t)len > sizeof k->spki) {
    custos_key_free(k);
    return CUSTOS_EKEY;
  }
  p = k->spki;
  i2d_PUBKEY(pkey, &p);
  k->spki_len = (size_t)len;
  crypto_hash_sha256(k->kid, k->spki, k->spki_len);
  *out = k;
  return CUSTOS_OK;
}

void custos_key_free(custos_key* key) {
  if (!key) return;
  EVP_PKEY_free(key->pkey);
  sodium_memzero(key->ed_secret, sizeof key->ed_secret);
  free(key);
}

int custos_key_alg(const custos_key* key) {
  return key->alg;
}

void custos_key_kid(const custos_key* key, uint8_t kid[32]) {
  memcpy(kid, key->kid, 32);
}

long custos_key_spki(const custos_key* key, uint8_t* out, size_t cap) {
  if (cap < key->spki_len) return CUSTOS_ETOOBIG;
  memcpy(out, key->spki, key->spki_len);
  return (long)key->spki_len;
}

/* ES256: ECDSA over SHA-256, DER converted to the COSE form r || s. */
static int sign_es256(const custos_key* key, const uint8_t* msg, size_t len, uint8_t sig[64]) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  uint8_t der[80];
  size_t der_len = sizeof der;
  const unsigned char* p = der;
  ECDSA_SIG* s = NULL;
  const BIGNUM *r = NULL, *sv = NULL;
  int rc = CUSTOS_ECRYPTO;
  if (!ctx) return CUSTOS_ECRYPTO;
  if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
      EVP_DigestSign(ctx, der, &der_len, msg, len) == 1 &&
      (s = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) != NULL) {
    ECDSA_SIG_get0(s, &r, &sv);
    if (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(sv, sig + 32, 32) == 32) rc = CUSTOS_OK;
  }
  ECDSA_SIG_free(s);
  EVP_MD_CTX_free(ctx);
  return rc;
}

static int sign_bytes(const custos_key* key, const uint8_t* msg, size_t len, uint8_t sig[64]) {
  if (key->alg == COSE_ALG_ED25519) {
    return crypto_sign_detached(sig, NULL, msg, len, key->ed_secret) == 0 ? CUSTOS_OK
                                                                          : CUSTOS_ECRYPTO;
  }
  return sign_es256(key, msg, len, sig);
}

static int text_ok(const char* t) {
  return t && *t && strlen(t) <= CUSTOS_TEXT_BYTES_MAX;
}

/* {1: alg, 3: content type, 4: kid, 15: {1: iss, 2: sub, 6: iat},
 *  -65537: sequence}: the keys in encoded-byte order 01 03 04 0f 3a... */
static void protected_header(custos_cbor* c, const custos_key* key, const custos_header* h) {
  custos_cbor_map(c, 5);
  custos_cbor_uint(c, 1);
  custos_cbor_int(c, key->alg);
  custos_cbor_uint(c, 3);
  custos_cbor_text(c, h->content_type);
  custos_cbor_uint(c, 4);
  custos_cbor_bytes(c, key->kid, 32);
  custos_cbor_uint(c, 15);
  custos_cbor_map(c, 3);
  custos_cbor_uint(c, 1);
  custos_cbor_text(c, h->issuer);
  custos_cbor_uint(c, 2);
  custos_cbor_text(c, h->subject);
  custos_cbor_uint(c, 6);
  custos_cbor_uint(c, h->issued_at_s);
  custos_cbor_int(c, -65537);
  custos_cbor_uint(c, h->sequence);
}

long custos_sign_statement(const custos_key* key, const custos_header* h, const uint8_t* payload,
                           size_t payload_len, uint8_t* out, size_t cap) {
  uint8_t prot[PROTECTED_BYTES_MAX];
  uint8_t* tbs;
  uint8_t sig[SIG_BYTES];
  size_t tbs_cap = payload_len + sizeof prot + 64;
  custos_cbor pc, tc, oc;
  int rc;
  if (!key || !h || (!payload && payload_len) || !out) return CUSTOS_EINVAL;
  if (!text_ok(h->content_type) || !text_ok(h->issuer) || !text_ok(h->subject) ||
      h->sequence == 0) {
    return CUSTOS_EINVAL;
  }
  if (payload_len > CUSTOS_STATEMENT_BYTES_MAX) return CUSTOS_ETOOBIG;
  custos_cbor_init(&pc, prot, sizeof prot);
  protected_header(&pc, key, h);
  if (pc.err) return pc.err;
  /* Sig_structure = ["Signature1", protected, h'', payload] */
  tbs = malloc(tbs_cap);
  if (!tbs) return CUSTOS_EIO;
  custos_cbor_init(&tc, tbs, tbs_cap);
  custos_cbor_array(&tc, 4);
  custos_cbor_text(&tc, "Signature1");
  custos_cbor_bytes(&tc, prot, pc.len);
  custos_cbor_bytes(&tc, NULL, 0);
  custos_cbor_bytes(&tc, payload, payload_len);
  rc = tc.err ? tc.err : sign_bytes(key, tbs, tc.len, sig);
  free(tbs);
  if (rc != CUSTOS_OK) return rc;
  /* 18([protected, {}, payload, signature]) */
  custos_cbor_init(&oc, out, cap);
  custos_cbor_tag(&oc, 18);
  custos_cbor_array(&oc, 4);
  custos_cbor_bytes(&oc, prot, pc.len);
  custos_cbor_map(&oc, 0);
  custos_cbor_bytes(&oc, payload, payload_len);
  custos_cbor_bytes(&oc, sig, SIG_BYTES);
  if (oc.err) return oc.err;
  return (long)oc.len;
}
