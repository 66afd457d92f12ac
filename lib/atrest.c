/*
 * NAME
 *	atrest - envelope encryption of data at rest
 * DESCRIPTION
 *	See atrest.h. The keys sit in one gcry_malloc_secure block of
 *	ATREST_CACHE slots; slot ids and times are in ordinary memory (they
 *	are not secret: an id names a meta record, which is itself wrapped
 *	to the store key). The current sealing DEK is one of the slots.
 *	One AES-256-GCM handle (in secure memory) is kept per open key
 *	schedule: re-keying it costs nothing next to a gpg run, so it is
 *	simply re-keyed when the slot changes.
 */
#include "atrest.h"
#include "record.h"

#include <errno.h>
#include <string.h>

#include <gcrypt.h>

#define DEK_BYTES	32
#define NONCE_BYTES	12
#define TAG_BYTES	16
#define WRAPPED_MAX	(64 * 1024)

struct slot {
	char id[ATREST_DEK_ID_SIZE];	/* "" when free */
	int64_t created;		/* 0 when unknown (opened, not made) */
};

struct atrest {
	struct store *store;
	struct pgp *pgp;
	char *store_fpr;		/* NULL: open only */
	unsigned char *keys;		/* ATREST_CACHE * DEK_BYTES, secure */
	struct slot slots[ATREST_CACHE];
	int current;			/* sealing slot, -1: none yet */
	int next;			/* next slot to (re)use */
	gcry_cipher_hd_t gcm;
	int gcm_slot;			/* whose key gcm holds, -1: none */
};

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64_value(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

/* b64_decode - strict: length a multiple of 4, padding only at the end. */
static int
b64_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
	unsigned char *o;
	size_t i, n = 0, pad = 0;

	if (len == 0 || len % 4 != 0)
		return -EBADMSG;
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	o = malloc(len / 4 * 3);
	if (o == NULL)
		return -ENOMEM;
	for (i = 0; i < len; i += 4) {
		int v[4];
		int last = i + 4 == len;

		for (int k = 0; k < 4; k++) {
			v[k] = b64_value(s[i + k]);
			if (v[k] < 0 && !(last && s[i + k] == '=' && k >= 4 - (int)pad)) {
				free(o);
				return -EBADMSG;
			}
			if (v[k] < 0)
				v[k] = 0;
		}
		o[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		o[n++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		o[n++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	*out = o;
	*outlen = n - pad;
	return 0;
}

static int
dek_id_valid(const char *id)
{
	if (id == NULL || strlen(id) != ATREST_DEK_ID_SIZE - 1)
		return 0;
	for (size_t i = 0; i < ATREST_DEK_ID_SIZE - 1; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	return 1;
}

static unsigned char *
slot_key(struct atrest *a, int i)
{
	return a->keys + (size_t)i * DEK_BYTES;
}

static void
slot_drop(struct atrest *a, int i)
{
	explicit_bzero(slot_key(a, i), DEK_BYTES);
	a->slots[i].id[0] = '\0';
	a->slots[i].created = 0;
	if (a->gcm_slot == i)
		a->gcm_slot = -1;	/* re-keyed before its next use */
	if (a->current == i)
		a->current = -1;
}

/* slot_take - a slot to fill: a free one, else the next in turn. */
static int
slot_take(struct atrest *a)
{
	int i;

	for (i = 0; i < ATREST_CACHE; i++)
		if (a->slots[i].id[0] == '\0')
			return i;
	i = a->next;
	a->next = (a->next + 1) % ATREST_CACHE;
	if (i == a->current) {		/* never evict the sealing key */
		i = a->next;
		a->next = (a->next + 1) % ATREST_CACHE;
	}
	slot_drop(a, i);
	return i;
}

static int
slot_find(const struct atrest *a, const char *id)
{
	for (int i = 0; i < ATREST_CACHE; i++)
		if (a->slots[i].id[0] && strcmp(a->slots[i].id, id) == 0)
			return i;
	return -1;
}

static void
gcry_ready(void)
{
	if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P))
		gcry_check_version(NULL);
}

int
atrest_new(struct store *store, struct pgp *pgp, const char *store_fpr,
	   struct atrest **out, struct cp_error *err)
{
	struct atrest *a;
	gcry_error_t e;

	*out = NULL;
	if (store == NULL || pgp == NULL)
		return cp_error_set(err, -EINVAL, "at rest: no store or no gpg");
	gcry_ready();
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return cp_error_set(err, -ENOMEM, "at rest: out of memory");
	a->keys = gcry_calloc_secure(ATREST_CACHE, DEK_BYTES);
	if (a->keys == NULL) {
		free(a);
		return cp_error_set(err, -ENOMEM, "at rest: no secure memory for keys");
	}
	e = gcry_cipher_open(&a->gcm, GCRY_CIPHER_AES256, GCRY_CIPHER_MODE_GCM,
			     GCRY_CIPHER_SECURE);
	if (e != 0) {
		gcry_free(a->keys);
		free(a);
		return cp_error_set(err, -ENOSYS, "at rest: AES-256-GCM: %s",
				    gcry_strerror(e));
	}
	a->store = store;
	a->pgp = pgp;
	if (store_fpr && (a->store_fpr = strdup(store_fpr)) == NULL) {
		atrest_free(a);
		return cp_error_set(err, -ENOMEM, "at rest: out of memory");
	}
	a->current = -1;
	a->gcm_slot = -1;
	*out = a;
	return 0;
}

void
atrest_free(struct atrest *a)
{
	if (a == NULL)
		return;
	gcry_cipher_close(a->gcm);	/* secure memory: wiped by gcrypt */
	explicit_bzero(a->keys, (size_t)ATREST_CACHE * DEK_BYTES);
	gcry_free(a->keys);
	free(a->store_fpr);
	explicit_bzero(a, sizeof(*a));
	free(a);
}

/* dek_make - a new sealing DEK, wrapped and committed to meta. */
static int
dek_make(struct atrest *a, int64_t now, struct cp_error *err)
{
	struct buf wrapped = BUF_INIT;
	unsigned char rnd[8];
	char id[ATREST_DEK_ID_SIZE];
	int i, r;

	if (a->store_fpr == NULL || a->store_fpr[0] == '\0')
		return cp_error_set(err, -ENOKEY, "at rest: no store key to wrap "
				    "data keys to");
	gcry_create_nonce(rnd, sizeof(rnd));
	cp_hex(rnd, sizeof(rnd), id);
	i = slot_take(a);
	/* The level GnuPG draws its session keys from, which play the same
	 * part: symmetric keys that live wrapped to a public key. (VERY_STRONG,
	 * for long-term key pairs, spends ~15 ms of CPU gathering more.) */
	gcry_randomize(slot_key(a, i), DEK_BYTES, GCRY_STRONG_RANDOM);
	wrapped.max = WRAPPED_MAX;
	r = pgp_encrypt_to(a->pgp, a->store_fpr, slot_key(a, i), DEK_BYTES, &wrapped, err);
	if (r < 0) {
		slot_drop(a, i);
		buf_free(&wrapped);
		return r;
	}
	r = dek_put(a->store, id, a->store_fpr, now, wrapped.data ? wrapped.data : "",
		    wrapped.len, err);
	buf_free(&wrapped);
	if (r < 0) {
		slot_drop(a, i);
		return r;
	}
	cp_strlcpy(a->slots[i].id, id, sizeof(a->slots[i].id));
	a->slots[i].created = now;
	a->current = i;
	return 0;
}

/* dek_load - the slot holding DEK id: cached, else unwrapped from meta. */
static int
dek_load(struct atrest *a, const char *id, struct cp_error *err)
{
	struct buf plain = BUF_INIT;
	char *armor = NULL;
	char *signer = NULL;
	int i, r;

	i = slot_find(a, id);
	if (i >= 0)
		return i;
	r = dek_get_wrapped(a->store, id, &armor, err);
	if (r == -ENOENT)
		return cp_error_set(err, -ENOKEY, "at rest: no data key %s in the store", id);
	if (r == -EBADMSG)
		return cp_error_set(err, -EBADMSG, "at rest: data key %s has no "
				    "wrapped key", id);
	if (r < 0)
		return r;
	/* Decrypted straight into secure memory: a bounded buf over it would
	 * need a custom allocator, so take the short plaintext and wipe it. */
	plain.max = 4096;
	r = pgp_decrypt_verify(a->pgp, armor, strlen(armor), &plain, &signer, err);
	free(signer);
	free(armor);
	if (r == 0 && plain.len != DEK_BYTES)
		r = cp_error_set(err, -EBADMSG, "at rest: data key %s is not %d bytes",
				 id, DEK_BYTES);
	if (r == 0) {
		i = slot_take(a);
		memcpy(slot_key(a, i), plain.data, DEK_BYTES);
		cp_strlcpy(a->slots[i].id, id, sizeof(a->slots[i].id));
	}
	if (plain.data)
		explicit_bzero(plain.data, plain.cap);
	buf_free(&plain);
	return r < 0 ? r : i;
}

static int
gcm_start(struct atrest *a, int slot, const unsigned char *nonce,
	  const void *aad, size_t aadlen, struct cp_error *err)
{
	gcry_error_t e = 0;

	if (a->gcm_slot != slot) {
		e = gcry_cipher_setkey(a->gcm, slot_key(a, slot), DEK_BYTES);
		a->gcm_slot = e == 0 ? slot : -1;
	}
	if (e == 0)
		e = gcry_cipher_reset(a->gcm);
	if (e == 0)
		e = gcry_cipher_setiv(a->gcm, nonce, NONCE_BYTES);
	if (e == 0 && aadlen > 0)
		e = gcry_cipher_authenticate(a->gcm, aad, aadlen);
	if (e != 0)
		return cp_error_set(err, -EIO, "at rest: AES-256-GCM: %s", gcry_strerror(e));
	return 0;
}

int
atrest_seal(struct atrest *a, int64_t now, const void *aad, size_t aadlen,
	    const void *plain, size_t len, struct buf *blob,
	    char dek_id[ATREST_DEK_ID_SIZE], struct cp_error *err)
{
	unsigned char *box;
	size_t boxlen = NONCE_BYTES + len + TAG_BYTES;
	gcry_error_t e;
	int r;

	if (a->current >= 0 && now - a->slots[a->current].created >= ATREST_DEK_MAX_AGE)
		a->current = -1;	/* stays cached for opening */
	if (a->current < 0) {
		r = dek_make(a, now, err);
		if (r < 0)
			return r;
	}
	box = malloc(boxlen);
	if (box == NULL)
		return cp_error_set(err, -ENOMEM, "at rest: out of memory");
	gcry_create_nonce(box, NONCE_BYTES);
	r = gcm_start(a, a->current, box, aad, aadlen, err);
	if (r == 0) {
		e = gcry_cipher_final(a->gcm);
		if (e == 0)
			e = gcry_cipher_encrypt(a->gcm, box + NONCE_BYTES, len, plain, len);
		if (e == 0)
			e = gcry_cipher_gettag(a->gcm, box + NONCE_BYTES + len, TAG_BYTES);
		if (e != 0)
			r = cp_error_set(err, -EIO, "at rest: AES-256-GCM: %s",
					 gcry_strerror(e));
	}
	if (r == 0 && buf_append_base64(blob, box, boxlen) < 0)
		r = cp_error_set(err, -ENOMEM, "at rest: out of memory");
	free(box);
	if (r == 0)
		cp_strlcpy(dek_id, a->slots[a->current].id, ATREST_DEK_ID_SIZE);
	return r;
}

int
atrest_open(struct atrest *a, const char *dek_id, const void *aad,
	    size_t aadlen, const char *blob, size_t bloblen,
	    struct buf *plain, struct cp_error *err)
{
	unsigned char *box = NULL;
	size_t boxlen = 0, len, start = plain->len;
	gcry_error_t e;
	int slot, r;

	if (!dek_id_valid(dek_id))
		return cp_error_set(err, -EBADMSG, "at rest: malformed data key id");
	r = b64_decode(blob, bloblen, &box, &boxlen);
	if (r == -ENOMEM)
		return cp_error_set(err, r, "at rest: out of memory");
	if (r < 0 || boxlen < NONCE_BYTES + TAG_BYTES) {
		free(box);
		return cp_error_set(err, -EBADMSG, "at rest: malformed blob");
	}
	slot = dek_load(a, dek_id, err);
	if (slot < 0) {
		free(box);
		return slot;
	}
	len = boxlen - NONCE_BYTES - TAG_BYTES;
	r = gcm_start(a, slot, box, aad, aadlen, err);
	if (r == 0 && buf_reserve(plain, len + 1) < 0)
		r = cp_error_set(err, -EFBIG, "at rest: content over limit");
	if (r == 0) {
		e = gcry_cipher_final(a->gcm);
		if (e == 0)
			e = gcry_cipher_decrypt(a->gcm, plain->data + start, len,
						box + NONCE_BYTES, len);
		if (e == 0)
			e = gcry_cipher_checktag(a->gcm, box + NONCE_BYTES + len, TAG_BYTES);
		if (gpg_err_code(e) == GPG_ERR_CHECKSUM) {
			r = cp_error_set(err, -EBADMSG, "at rest: content failed "
					 "authentication (data key %s)", dek_id);
		} else if (e != 0) {
			r = cp_error_set(err, -EIO, "at rest: AES-256-GCM: %s",
					 gcry_strerror(e));
		}
		if (r < 0)
			explicit_bzero(plain->data + start, len);
	}
	free(box);
	if (r < 0)
		return r;
	plain->len = start + len;
	plain->data[plain->len] = '\0';
	return 0;
}
