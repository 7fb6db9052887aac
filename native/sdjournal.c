// Minimal N-API binding to libsystemd's sd-journal reader, for mailjail's journald source.
// Why: a `journalctl -o export` child tops out well below 100k entries/s in Node because every
// entry is formatted as text and re-parsed; here we read only the wanted fields straight from the
// journal files. N-API (not V8/NAN) keeps the same .node working on Node 20 and 22.
//
// JS side (src/sources/journal-native.ts) guarantees one call at a time per handle: `wait` runs
// sd_journal_wait on a worker thread, and no other call is made on that handle until it settles.
#define NAPI_VERSION 8
#include <node_api.h>
#include <systemd/sd-journal.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64
#define MAX_GLOBS 256

typedef struct {
  sd_journal *j;
  int nfields;
  char *fields[MAX_FIELDS];
  size_t flen[MAX_FIELDS];
  int nglobs;
  char *globs[MAX_GLOBS];
  int nunits;
  char *units[MAX_GLOBS];
  int busy;
  int hold; /* the current entry is still to be read (set by SeekCursor when the cursor is gone) */
} Reader;

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, "MJ_JOURNAL_NAPI", #call " failed"); return NULL; } } while (0)

static napi_value throw_errno(napi_env env, const char *what, int r) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s: %s", what, strerror(r < 0 ? -r : r));
  napi_throw_error(env, "MJ_JOURNAL_READ", buf);
  return NULL;
}

static char *get_str(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (!s) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

/* Reads `key` of `obj` as a string array; returns count (or -1 if absent). */
static int get_str_array(napi_env env, napi_value obj, const char *key, char **out, int max) {
  bool has = false;
  napi_has_named_property(env, obj, key, &has);
  if (!has) return -1;
  napi_value arr;
  napi_get_named_property(env, obj, key, &arr);
  bool is_arr = false;
  napi_is_array(env, arr, &is_arr);
  if (!is_arr) return -1;
  uint32_t n = 0;
  napi_get_array_length(env, arr, &n);
  int k = 0;
  for (uint32_t i = 0; i < n && k < max; i++) {
    napi_value e;
    napi_get_element(env, arr, i, &e);
    char *s = get_str(env, e);
    if (s) out[k++] = s;
  }
  return k;
}

static void reader_free(Reader *r) {
  if (r->j) sd_journal_close(r->j);
  r->j = NULL;
  for (int i = 0; i < r->nfields; i++) free(r->fields[i]);
  for (int i = 0; i < r->nglobs; i++) free(r->globs[i]);
  for (int i = 0; i < r->nunits; i++) free(r->units[i]);
  r->nfields = r->nglobs = r->nunits = 0;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  Reader *r = data;
  if (!r->busy) { reader_free(r); free(r); }
  /* If a wait is still running on a worker thread, leak rather than race. */
}

static Reader *unwrap(napi_env env, napi_value v) {
  Reader *r = NULL;
  if (napi_get_value_external(env, v, (void **)&r) != napi_ok || !r || !r->j) {
    napi_throw_error(env, "MJ_JOURNAL_CLOSED", "journal reader is closed");
    return NULL;
  }
  return r;
}

/* open({directory?, files?, matches: string[], fields: string[], globs?: string[]}) */
static napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) { napi_throw_type_error(env, NULL, "open(options)"); return NULL; }
  napi_value o = argv[0];
  Reader *r = calloc(1, sizeof *r);
  int rc;
  char *files[256];
  int nfiles = get_str_array(env, o, "files", files, 255);
  bool has_dir = false;
  napi_has_named_property(env, o, "directory", &has_dir);
  if (nfiles > 0) {
    files[nfiles] = NULL;
    rc = sd_journal_open_files(&r->j, (const char **)files, 0);
    for (int i = 0; i < nfiles; i++) free(files[i]);
  } else if (has_dir) {
    napi_value d;
    napi_get_named_property(env, o, "directory", &d);
    char *dir = get_str(env, d);
    rc = sd_journal_open_directory(&r->j, dir, 0);
    free(dir);
  } else {
    rc = sd_journal_open(&r->j, SD_JOURNAL_LOCAL_ONLY);
  }
  if (rc < 0) { free(r); return throw_errno(env, "sd_journal_open", rc); }
  sd_journal_set_data_threshold(r->j, 0);
  /* Set up inotify now, before the first read: sd-journal only sees appended entries and new
     (rotated) files after processing their inotify events, and events from before the watch
     exists are never delivered. */
  rc = sd_journal_get_fd(r->j);
  if (rc < 0 && nfiles <= 0) { reader_free(r); free(r); return throw_errno(env, "sd_journal_get_fd", rc); }

  char *matches[512];
  int nm = get_str_array(env, o, "matches", matches, 512);
  for (int i = 0; i < nm; i++) {
    int e = strcmp(matches[i], "+") == 0 ? sd_journal_add_disjunction(r->j) : sd_journal_add_match(r->j, matches[i], 0);
    free(matches[i]);
    if (e < 0) { for (int k = i + 1; k < nm; k++) free(matches[k]); reader_free(r); free(r); return throw_errno(env, "sd_journal_add_match", e); }
  }
  int nf = get_str_array(env, o, "fields", r->fields, MAX_FIELDS);
  r->nfields = nf < 0 ? 0 : nf;
  for (int i = 0; i < r->nfields; i++) r->flen[i] = strlen(r->fields[i]);
  int ng = get_str_array(env, o, "globs", r->globs, MAX_GLOBS);
  r->nglobs = ng < 0 ? 0 : ng;
  int nu = get_str_array(env, o, "units", r->units, MAX_GLOBS);
  r->nunits = nu < 0 ? 0 : nu;

  napi_value ext;
  CHECK(napi_create_external(env, r, finalize, NULL, &ext));
  return ext;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Reader *r = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&r) == napi_ok && r && !r->busy) reader_free(r);
  return NULL;
}

/* seek(h, where): where = "head" | "tail" | number (realtime usec as double). */
static napi_value Seek(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Reader *r = unwrap(env, argv[0]);
  if (!r) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  int rc;
  r->hold = 0;
  if (t == napi_number) {
    double usec;
    napi_get_value_double(env, argv[1], &usec);
    rc = sd_journal_seek_realtime_usec(r->j, (uint64_t)usec);
  } else {
    char *w = get_str(env, argv[1]);
    if (w && strcmp(w, "tail") == 0) {
      rc = sd_journal_seek_tail(r->j);
      /* Step onto the last entry so the next read starts after it ("from now"). */
      if (rc >= 0) rc = sd_journal_previous(r->j);
    } else rc = sd_journal_seek_head(r->j);
    free(w);
  }
  if (rc < 0) return throw_errno(env, "sd_journal_seek", rc);
  return NULL;
}

/* seekCursor(h, cursor) -> true if the cursor's entry exists (reading resumes right after it);
   false if it is gone (reading resumes at the first entry after where it was). */
static napi_value SeekCursor(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Reader *r = unwrap(env, argv[0]);
  if (!r) return NULL;
  char *c = get_str(env, argv[1]);
  int rc = sd_journal_seek_cursor(r->j, c);
  bool found = false;
  if (rc >= 0) {
    rc = sd_journal_next(r->j);
    if (rc > 0) {
      found = sd_journal_test_cursor(r->j, c) > 0;
      /* If the cursor is gone, this entry is the first after where it was: read it next. */
      r->hold = !found;
    }
  }
  free(c);
  if (rc < 0) return throw_errno(env, "sd_journal_seek_cursor", rc);
  napi_value out;
  napi_get_boolean(env, found, &out);
  return out;
}

/* In-process filter, used when the program list has globs (the journal's matches are exact):
   keep an entry whose SYSLOG_IDENTIFIER matches a glob ('*' does not cross '/'), or whose
   _SYSTEMD_UNIT is one of `units`. */
static bool glob_ok(Reader *r) {
  if (r->nglobs == 0 && r->nunits == 0) return true;
  const void *d;
  size_t l;
  char id[256];
  if (r->nglobs > 0 && sd_journal_get_data(r->j, "SYSLOG_IDENTIFIER", &d, &l) >= 0) {
    size_t n = l - 18 < sizeof id - 1 ? l - 18 : sizeof id - 1;
    memcpy(id, (const char *)d + 18, n);
    id[n] = 0;
    for (int i = 0; i < r->nglobs; i++)
      if (fnmatch(r->globs[i], id, FNM_PATHNAME) == 0) return true;
  }
  if (r->nunits > 0 && sd_journal_get_data(r->j, "_SYSTEMD_UNIT", &d, &l) >= 0) {
    for (int i = 0; i < r->nunits; i++) {
      size_t ul = strlen(r->units[i]);
      if (l - 14 == ul && memcmp((const char *)d + 14, r->units[i], ul) == 0) return true;
    }
  }
  return false;
}

/* read(h, max) -> array of entries (objects of the wanted fields + __CURSOR + __REALTIME_TIMESTAMP).
   Entries failing the globs are skipped. At most 16*max entries are scanned per call so the event
   loop is never held long; the array's `more` property is true when the scan stopped early. */
static napi_value Read(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Reader *r = unwrap(env, argv[0]);
  if (!r) return NULL;
  uint32_t max = 1000;
  napi_get_value_uint32(env, argv[1], &max);
  napi_value arr;
  CHECK(napi_create_array(env, &arr));
  napi_value keys[MAX_FIELDS], kCursor, kRealtime;
  for (int i = 0; i < r->nfields; i++) CHECK(napi_create_string_utf8(env, r->fields[i], r->flen[i], &keys[i]));
  CHECK(napi_create_string_utf8(env, "__CURSOR", NAPI_AUTO_LENGTH, &kCursor));
  CHECK(napi_create_string_utf8(env, "__REALTIME_TIMESTAMP", NAPI_AUTO_LENGTH, &kRealtime));
  uint32_t n = 0, scanned = 0;
  while (n < max && scanned < max * 16) {
    int rc = r->hold ? 1 : sd_journal_next(r->j);
    r->hold = 0;
    if (rc < 0) return throw_errno(env, "sd_journal_next", rc);
    if (rc == 0) break;
    scanned++;
    if (!glob_ok(r)) continue;
    napi_value obj, v;
    CHECK(napi_create_object(env, &obj));
    const void *d;
    size_t l;
    SD_JOURNAL_FOREACH_DATA(r->j, d, l) {
      const char *s = d;
      const char *eq = memchr(s, '=', l);
      if (!eq) continue;
      size_t klen = (size_t)(eq - s);
      for (int i = 0; i < r->nfields; i++) {
        if (r->flen[i] == klen && memcmp(r->fields[i], s, klen) == 0) {
          CHECK(napi_create_string_utf8(env, eq + 1, l - klen - 1, &v));
          CHECK(napi_set_property(env, obj, keys[i], v));
          break;
        }
      }
    }
    char *cur = NULL;
    if (sd_journal_get_cursor(r->j, &cur) >= 0) {
      CHECK(napi_create_string_utf8(env, cur, NAPI_AUTO_LENGTH, &v));
      CHECK(napi_set_property(env, obj, kCursor, v));
      free(cur);
    }
    uint64_t usec;
    if (sd_journal_get_realtime_usec(r->j, &usec) >= 0) {
      char buf[32];
      int bl = snprintf(buf, sizeof buf, "%llu", (unsigned long long)usec);
      CHECK(napi_create_string_utf8(env, buf, (size_t)bl, &v));
      CHECK(napi_set_property(env, obj, kRealtime, v));
    }
    CHECK(napi_set_element(env, arr, n++, obj));
  }
  if (scanned >= max * 16) {
    napi_value t;
    napi_get_boolean(env, true, &t);
    napi_set_named_property(env, arr, "more", t);
  }
  return arr;
}

/* cursor(h) -> cursor of the current entry (the last one read or skipped), or undefined. */
static napi_value Cursor(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Reader *r = unwrap(env, argv[0]);
  if (!r) return NULL;
  char *cur = NULL;
  napi_value out;
  if (r->hold || sd_journal_get_cursor(r->j, &cur) < 0) {
    napi_get_undefined(env, &out);
    return out;
  }
  napi_create_string_utf8(env, cur, NAPI_AUTO_LENGTH, &out);
  free(cur);
  return out;
}

/* --- wait(h, timeoutMs) -> Promise<number> (SD_JOURNAL_NOP/APPEND/INVALIDATE), on a worker thread --- */
typedef struct {
  Reader *r;
  uint64_t usec;
  int rc;
  napi_deferred def;
  napi_async_work work;
} WaitJob;

static void wait_exec(napi_env env, void *data) {
  (void)env;
  WaitJob *w = data;
  w->rc = sd_journal_wait(w->r->j, w->usec);
}

static void wait_done(napi_env env, napi_status status, void *data) {
  WaitJob *w = data;
  w->r->busy = 0;
  napi_value v;
  if (status == napi_ok && w->rc >= 0) {
    napi_create_int32(env, w->rc, &v);
    napi_resolve_deferred(env, w->def, v);
  } else {
    napi_value msg, code;
    napi_create_string_utf8(env, strerror(w->rc < 0 ? -w->rc : EIO), NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, "MJ_JOURNAL_READ", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &v);
    napi_reject_deferred(env, w->def, v);
  }
  napi_delete_async_work(env, w->work);
  free(w);
}

static napi_value Wait(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Reader *r = unwrap(env, argv[0]);
  if (!r) return NULL;
  if (r->busy) { napi_throw_error(env, "MJ_JOURNAL_BUSY", "wait already running"); return NULL; }
  double ms = 1000;
  napi_get_value_double(env, argv[1], &ms);
  WaitJob *w = calloc(1, sizeof *w);
  w->r = r;
  w->usec = (uint64_t)(ms * 1000);
  napi_value promise, name;
  CHECK(napi_create_promise(env, &w->def, &promise));
  CHECK(napi_create_string_utf8(env, "sd_journal_wait", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, wait_exec, wait_done, w, &w->work));
  r->busy = 1;
  CHECK(napi_queue_async_work(env, w->work));
  return promise;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "open", NULL, Open, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, Close, NULL, NULL, NULL, napi_default, NULL },
    { "seek", NULL, Seek, NULL, NULL, NULL, napi_default, NULL },
    { "seekCursor", NULL, SeekCursor, NULL, NULL, NULL, napi_default, NULL },
    { "read", NULL, Read, NULL, NULL, NULL, napi_default, NULL },
    { "cursor", NULL, Cursor, NULL, NULL, NULL, napi_default, NULL },
    { "wait", NULL, Wait, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
