/*
 * ramfs.c - the port's filesystem in RAM, the `os` module and open().
 *
 * A small FAT-like store: MPPORT_FS_SIZE bytes of RAM (outside the MicroPython heap, so files survive a soft
 * reset and do not cost heap) cut into RAMFS_BLK-byte blocks chained through a 16-bit table; a flat table of
 * RAMFS_MAX_ENTRIES entries holds each file's or directory's absolute path (without the leading "/"), first
 * block and size. Writes go straight into blocks (a file keeps what was written even if never closed, as on a
 * real flash filesystem); open files name their entry with a generation number, so a file removed or replaced
 * under an open handle gives EBADF instead of another file's bytes.
 *
 * os: stat, ilistdir, listdir, mkdir, rmdir, remove, rename (replaces an existing file, as LittleFS/POSIX),
 * getcwd, chdir, statvfs, uname, sep. open(): modes r, w, a, x with b or t; read, readinto, readline,
 * iteration, write, seek, tell, flush, close, context manager. Imports (.py and .mpy) read the same store.
 */
#include <string.h>

#include "py/builtin.h"
#include "py/lexer.h"
#include "py/mperrno.h"
#include "py/objstr.h"
#include "py/objtuple.h"
#include "py/reader.h"
#include "py/runtime.h"
#include "py/stream.h"
#include "ramfs.h"

#define RAMFS_BLK 512u
#define RAMFS_NBLK (MPPORT_FS_SIZE / RAMFS_BLK)
#define RAMFS_MAX_ENTRIES 256
#define RAMFS_NAME 112
#define FAT_FREE 0xFFFEu
#define FAT_END 0xFFFFu
#define RAMFS_ENAMETOOLONG 36 /* not in py/mperrno.h: the Linux numbers */
#define RAMFS_ENOTEMPTY 39

#if RAMFS_NBLK >= FAT_FREE
#error MPPORT_FS_SIZE too large for 16-bit block numbers
#endif

typedef struct {
    char name[RAMFS_NAME]; /* "" = unused; absolute path without the leading "/" */
    uint32_t size;
    uint16_t first;
    uint16_t gen;
    uint8_t dir;
} ramfs_ent_t;

static uint8_t pool[RAMFS_NBLK][RAMFS_BLK] __attribute__((aligned(8)));
static uint16_t fat[RAMFS_NBLK];
static ramfs_ent_t ents[RAMFS_MAX_ENTRIES];
static uint16_t gen_counter;
static char cwd[RAMFS_NAME];

void ramfs_format(void) {
    for (size_t i = 0; i < RAMFS_NBLK; i++) {
        fat[i] = FAT_FREE;
    }
    memset(ents, 0, sizeof(ents));
    cwd[0] = 0;
}

void ramfs_soft_reset(void) {
    cwd[0] = 0;
}

/* ------------------------------------------------------------------------------------------- blocks */
static size_t free_blocks(void) {
    size_t n = 0;
    for (size_t i = 0; i < RAMFS_NBLK; i++) {
        n += fat[i] == FAT_FREE;
    }
    return n;
}

static uint16_t alloc_block(void) {
    for (size_t i = 0; i < RAMFS_NBLK; i++) {
        if (fat[i] == FAT_FREE) {
            fat[i] = FAT_END;
            return (uint16_t)i;
        }
    }
    mp_raise_OSError(MP_ENOSPC);
}

static void free_chain(uint16_t b) {
    while (b != FAT_END) {
        uint16_t n = fat[b];
        fat[b] = FAT_FREE;
        b = n;
    }
}

/* ------------------------------------------------------------------------------------------- paths */
/* Absolute, normalised path (no leading or trailing "/", no "." or ".."), into out[RAMFS_NAME]. */
static void norm_path(const char *in, char *out) {
    char tmp[2 * RAMFS_NAME + 2];
    size_t n = 0;
    if (in[0] != '/') {
        size_t c = strlen(cwd);
        memcpy(tmp, cwd, c);
        n = c;
        tmp[n++] = '/';
    }
    size_t l = strlen(in);
    if (n + l + 1 > sizeof(tmp)) {
        mp_raise_OSError(RAMFS_ENAMETOOLONG);
    }
    memcpy(tmp + n, in, l + 1);
    size_t o = 0;
    const char *p = tmp;
    while (*p) {
        while (*p == '/') {
            p++;
        }
        const char *s = p;
        while (*p && *p != '/') {
            p++;
        }
        size_t k = (size_t)(p - s);
        if (k == 0 || (k == 1 && s[0] == '.')) {
            continue;
        }
        if (k == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/') {
                o--;
            }
            if (o > 0) {
                o--;
            }
            continue;
        }
        if (o + (o ? 1 : 0) + k + 1 > RAMFS_NAME) {
            mp_raise_OSError(RAMFS_ENAMETOOLONG);
        }
        if (o) {
            out[o++] = '/';
        }
        memcpy(out + o, s, k);
        o += k;
    }
    out[o] = 0;
}

static int find(const char *abs) {
    for (int i = 0; i < RAMFS_MAX_ENTRIES; i++) {
        if (ents[i].name[0] && strcmp(ents[i].name, abs) == 0) {
            return i;
        }
    }
    return -1;
}

static bool is_dir(const char *abs) {
    if (abs[0] == 0) {
        return true;
    }
    int i = find(abs);
    return i >= 0 && ents[i].dir;
}

static bool parent_is_dir(const char *abs) {
    const char *slash = strrchr(abs, '/');
    if (slash == NULL) {
        return true;
    }
    char parent[RAMFS_NAME];
    memcpy(parent, abs, (size_t)(slash - abs));
    parent[slash - abs] = 0;
    return is_dir(parent);
}

/* entry directly inside directory dir ("" = root)? returns the name part, or NULL */
static const char *child_name(const char *dir, const char *name) {
    size_t d = strlen(dir);
    if (d) {
        if (strncmp(name, dir, d) != 0 || name[d] != '/') {
            return NULL;
        }
        name += d + 1;
    }
    return strchr(name, '/') ? NULL : name;
}

static int new_entry(const char *abs, bool dir) {
    for (int i = 0; i < RAMFS_MAX_ENTRIES; i++) {
        if (ents[i].name[0] == 0) {
            strcpy(ents[i].name, abs);
            ents[i].size = 0;
            ents[i].first = FAT_END;
            ents[i].gen = ++gen_counter;
            ents[i].dir = dir;
            return i;
        }
    }
    mp_raise_OSError(MP_ENOSPC);
}

static void drop_entry(int i) {
    free_chain(ents[i].first);
    ents[i].name[0] = 0;
    ents[i].first = FAT_END;
    ents[i].gen = ++gen_counter;
}

static const char *path_arg(mp_obj_t p, char *abs) {
    norm_path(mp_obj_str_get_str(p), abs);
    return abs;
}

/* ------------------------------------------------------------------------------------------- cursor */
typedef struct {
    int16_t idx;
    uint16_t gen;
    uint32_t pos;
    uint16_t blk;  /* block holding byte `pos` (or FAT_END: not located yet) */
    uint32_t bpos; /* offset of that block in the file */
} cursor_t;

static ramfs_ent_t *cursor_ent(cursor_t *c) {
    if (c->idx < 0 || ents[c->idx].name[0] == 0 || ents[c->idx].gen != c->gen) {
        return NULL;
    }
    return &ents[c->idx];
}

/* locate the block for c->pos; allocate blocks up to it when `grow` (the file is then at least pos+1 long in
 * blocks; the size is set by the caller) */
static uint16_t cursor_block(cursor_t *c, ramfs_ent_t *e, bool grow) {
    uint32_t want = c->pos / RAMFS_BLK * RAMFS_BLK;
    if (c->blk == FAT_END || c->bpos > want) {
        if (e->first == FAT_END) {
            if (!grow) {
                return FAT_END;
            }
            e->first = alloc_block();
        }
        c->blk = e->first;
        c->bpos = 0;
    }
    while (c->bpos < want) {
        if (fat[c->blk] == FAT_END) {
            if (!grow) {
                return FAT_END;
            }
            uint16_t nb = alloc_block();
            fat[c->blk] = nb;
        }
        c->blk = fat[c->blk];
        c->bpos += RAMFS_BLK;
    }
    return c->blk;
}

static size_t cursor_read(cursor_t *c, ramfs_ent_t *e, uint8_t *buf, size_t n) {
    size_t done = 0;
    while (done < n && c->pos < e->size) {
        uint16_t b = cursor_block(c, e, false);
        if (b == FAT_END) {
            break;
        }
        size_t off = c->pos % RAMFS_BLK;
        size_t k = RAMFS_BLK - off;
        if (k > e->size - c->pos) {
            k = e->size - c->pos;
        }
        if (k > n - done) {
            k = n - done;
        }
        memcpy(buf + done, pool[b] + off, k);
        done += k;
        c->pos += k;
    }
    return done;
}

/* ------------------------------------------------------------------------------------------- files */
typedef struct {
    mp_obj_base_t base;
    cursor_t cur;
    bool writable;
    bool readable;
    bool closed;
} ramfs_file_t;

static mp_uint_t file_read(mp_obj_t self_in, void *buf, mp_uint_t size, int *errcode) {
    ramfs_file_t *f = MP_OBJ_TO_PTR(self_in);
    ramfs_ent_t *e = f->closed ? NULL : cursor_ent(&f->cur);
    if (e == NULL || !f->readable) {
        *errcode = MP_EBADF;
        return MP_STREAM_ERROR;
    }
    return cursor_read(&f->cur, e, buf, size);
}

static mp_uint_t file_write(mp_obj_t self_in, const void *buf, mp_uint_t size, int *errcode) {
    ramfs_file_t *f = MP_OBJ_TO_PTR(self_in);
    ramfs_ent_t *e = f->closed ? NULL : cursor_ent(&f->cur);
    if (e == NULL || !f->writable) {
        *errcode = MP_EBADF;
        return MP_STREAM_ERROR;
    }
    const uint8_t *src = buf;
    size_t done = 0;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        while (done < size) {
            uint16_t b = cursor_block(&f->cur, e, true);
            size_t off = f->cur.pos % RAMFS_BLK;
            size_t k = RAMFS_BLK - off;
            if (k > size - done) {
                k = size - done;
            }
            memcpy(pool[b] + off, src + done, k);
            done += k;
            f->cur.pos += k;
            if (f->cur.pos > e->size) {
                e->size = f->cur.pos;
            }
        }
        nlr_pop();
    } else {
        *errcode = MP_ENOSPC;
        return done ? done : MP_STREAM_ERROR;
    }
    return done;
}

static mp_uint_t file_ioctl(mp_obj_t self_in, mp_uint_t request, uintptr_t arg, int *errcode) {
    ramfs_file_t *f = MP_OBJ_TO_PTR(self_in);
    if (request == MP_STREAM_CLOSE) {
        f->closed = true;
        return 0;
    }
    ramfs_ent_t *e = f->closed ? NULL : cursor_ent(&f->cur);
    if (e == NULL) {
        *errcode = MP_EBADF;
        return MP_STREAM_ERROR;
    }
    if (request == MP_STREAM_FLUSH) {
        return 0;
    }
    if (request == MP_STREAM_SEEK) {
        struct mp_stream_seek_t *s = (struct mp_stream_seek_t *)arg;
        mp_off_t base = s->whence == 0 ? 0 : s->whence == 1 ? (mp_off_t)f->cur.pos : (mp_off_t)e->size;
        mp_off_t p = base + s->offset;
        if (p < 0) {
            p = 0;
        }
        if ((uint32_t)p > e->size) {
            p = e->size; /* no sparse files */
        }
        f->cur.pos = (uint32_t)p;
        s->offset = p;
        return 0;
    }
    *errcode = MP_EINVAL;
    return MP_STREAM_ERROR;
}

static void file_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
    (void)kind;
    ramfs_file_t *f = MP_OBJ_TO_PTR(self_in);
    mp_printf(print, "<io.%s %p>", mp_obj_get_type_str(self_in), f);
}

static const mp_rom_map_elem_t file_locals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_read), MP_ROM_PTR(&mp_stream_read_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&mp_stream_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_readline), MP_ROM_PTR(&mp_stream_unbuffered_readline_obj) },
    { MP_ROM_QSTR(MP_QSTR_readlines), MP_ROM_PTR(&mp_stream_unbuffered_readlines_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&mp_stream_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_flush), MP_ROM_PTR(&mp_stream_flush_obj) },
    { MP_ROM_QSTR(MP_QSTR_close), MP_ROM_PTR(&mp_stream_close_obj) },
    { MP_ROM_QSTR(MP_QSTR_seek), MP_ROM_PTR(&mp_stream_seek_obj) },
    { MP_ROM_QSTR(MP_QSTR_tell), MP_ROM_PTR(&mp_stream_tell_obj) },
    { MP_ROM_QSTR(MP_QSTR___enter__), MP_ROM_PTR(&mp_identity_obj) },
    { MP_ROM_QSTR(MP_QSTR___exit__), MP_ROM_PTR(&mp_stream___exit___obj) },
};
static MP_DEFINE_CONST_DICT(file_locals_dict, file_locals_table);

static const mp_stream_p_t fileio_stream_p = {
    .read = file_read, .write = file_write, .ioctl = file_ioctl, .is_text = false,
};
static const mp_stream_p_t textio_stream_p = {
    .read = file_read, .write = file_write, .ioctl = file_ioctl, .is_text = true,
};

static MP_DEFINE_CONST_OBJ_TYPE(ramfs_fileio_type, MP_QSTR_FileIO, MP_TYPE_FLAG_ITER_IS_STREAM,
    print, file_print, protocol, &fileio_stream_p, locals_dict, &file_locals_dict);
static MP_DEFINE_CONST_OBJ_TYPE(ramfs_textio_type, MP_QSTR_TextIOWrapper, MP_TYPE_FLAG_ITER_IS_STREAM,
    print, file_print, protocol, &textio_stream_p, locals_dict, &file_locals_dict);

mp_obj_t mp_builtin_open(size_t n_args, const mp_obj_t *args, mp_map_t *kwargs) {
    enum { ARG_file, ARG_mode };
    static const mp_arg_t allowed[] = {
        { MP_QSTR_file, MP_ARG_OBJ | MP_ARG_REQUIRED, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_mode, MP_ARG_OBJ, {.u_rom_obj = MP_ROM_QSTR(MP_QSTR_r)} },
    };
    mp_arg_val_t a[MP_ARRAY_SIZE(allowed)];
    mp_arg_parse_all(n_args, args, kwargs, MP_ARRAY_SIZE(allowed), allowed, a);
    char abs[RAMFS_NAME];
    path_arg(a[ARG_file].u_obj, abs);
    const char *mode = mp_obj_str_get_str(a[ARG_mode].u_obj);
    char kind = 0;
    bool text = true, plus = false;
    for (const char *m = mode; *m; m++) {
        switch (*m) {
            case 'r': case 'w': case 'a': case 'x':
                if (kind) {
                    mp_raise_ValueError(MP_ERROR_TEXT("invalid mode"));
                }
                kind = *m;
                break;
            case 'b': text = false; break;
            case 't': text = true; break;
            case '+': plus = true; break;
            default: mp_raise_ValueError(MP_ERROR_TEXT("invalid mode"));
        }
    }
    if (!kind) {
        kind = 'r';
    }
    if (abs[0] == 0 || is_dir(abs)) {
        mp_raise_OSError(MP_EISDIR);
    }
    int i = find(abs);
    if (kind == 'r') {
        if (i < 0) {
            mp_raise_OSError(MP_ENOENT);
        }
    } else {
        if (!parent_is_dir(abs)) {
            mp_raise_OSError(MP_ENOENT);
        }
        if (kind == 'x' && i >= 0) {
            mp_raise_OSError(MP_EEXIST);
        }
        if (i >= 0 && kind == 'w') {
            free_chain(ents[i].first);
            ents[i].first = FAT_END;
            ents[i].size = 0;
        }
        if (i < 0) {
            i = new_entry(abs, false);
        }
    }
    ramfs_file_t *f = mp_obj_malloc(ramfs_file_t, text ? &ramfs_textio_type : &ramfs_fileio_type);
    f->cur.idx = (int16_t)i;
    f->cur.gen = ents[i].gen;
    f->cur.pos = kind == 'a' ? ents[i].size : 0;
    f->cur.blk = FAT_END;
    f->cur.bpos = 0;
    f->readable = kind == 'r' || plus;
    f->writable = kind != 'r' || plus;
    f->closed = false;
    return MP_OBJ_FROM_PTR(f);
}
MP_DEFINE_CONST_FUN_OBJ_KW(mp_builtin_open_obj, 1, mp_builtin_open);

/* ------------------------------------------------------------------------------------------- import */
mp_import_stat_t mp_import_stat(const char *path) {
    char abs[RAMFS_NAME];
    nlr_buf_t nlr;
    if (nlr_push(&nlr) != 0) {
        return MP_IMPORT_STAT_NO_EXIST; /* name too long */
    }
    norm_path(path, abs);
    nlr_pop();
    if (abs[0] == 0) {
        return MP_IMPORT_STAT_DIR;
    }
    int i = find(abs);
    if (i < 0) {
        return MP_IMPORT_STAT_NO_EXIST;
    }
    return ents[i].dir ? MP_IMPORT_STAT_DIR : MP_IMPORT_STAT_FILE;
}

typedef struct {
    cursor_t cur;
    uint8_t buf[64];
    uint8_t len, at;
} ramfs_reader_t;

static mp_uint_t reader_readbyte(void *data) {
    ramfs_reader_t *r = data;
    if (r->at == r->len) {
        ramfs_ent_t *e = cursor_ent(&r->cur);
        r->len = e ? (uint8_t)cursor_read(&r->cur, e, r->buf, sizeof(r->buf)) : 0;
        r->at = 0;
        if (r->len == 0) {
            return MP_READER_EOF;
        }
    }
    return r->buf[r->at++];
}

static void reader_close(void *data) {
    m_del_obj(ramfs_reader_t, data);
}

void mp_reader_new_file(mp_reader_t *reader, qstr filename) {
    char abs[RAMFS_NAME];
    norm_path(qstr_str(filename), abs);
    int i = find(abs);
    if (i < 0 || ents[i].dir) {
        mp_raise_OSError(MP_ENOENT);
    }
    ramfs_reader_t *r = m_new_obj(ramfs_reader_t);
    r->cur.idx = (int16_t)i;
    r->cur.gen = ents[i].gen;
    r->cur.pos = 0;
    r->cur.blk = FAT_END;
    r->cur.bpos = 0;
    r->len = r->at = 0;
    reader->data = r;
    reader->readbyte = reader_readbyte;
    reader->close = reader_close;
}

mp_lexer_t *mp_lexer_new_from_file(qstr filename) {
    mp_reader_t reader;
    mp_reader_new_file(&reader, filename);
    return mp_lexer_new(filename, reader);
}

/* ------------------------------------------------------------------------------------------- os */
static mp_obj_t os_stat(mp_obj_t path) {
    char abs[RAMFS_NAME];
    path_arg(path, abs);
    mp_int_t mode, size = 0;
    if (abs[0] == 0) {
        mode = 0x4000;
    } else {
        int i = find(abs);
        if (i < 0) {
            mp_raise_OSError(MP_ENOENT);
        }
        mode = ents[i].dir ? 0x4000 : 0x8000;
        size = ents[i].dir ? 0 : (mp_int_t)ents[i].size;
    }
    mp_obj_t t[10];
    for (int k = 0; k < 10; k++) {
        t[k] = MP_OBJ_NEW_SMALL_INT(0);
    }
    t[0] = MP_OBJ_NEW_SMALL_INT(mode);
    t[6] = mp_obj_new_int(size);
    return mp_obj_new_tuple(10, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(os_stat_obj, os_stat);

static mp_obj_t list_dir(size_t n_args, const mp_obj_t *args, bool tuples) {
    char abs[RAMFS_NAME];
    if (n_args > 0) {
        path_arg(args[0], abs);
    } else {
        strcpy(abs, cwd);
    }
    if (!is_dir(abs)) {
        mp_raise_OSError(find(abs) >= 0 ? MP_ENOTDIR : MP_ENOENT);
    }
    bool bytes_names = n_args > 0 && mp_obj_is_type(args[0], &mp_type_bytes);
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < RAMFS_MAX_ENTRIES; i++) {
        const char *nm = ents[i].name[0] ? child_name(abs, ents[i].name) : NULL;
        if (nm == NULL) {
            continue;
        }
        mp_obj_t name = bytes_names ? mp_obj_new_bytes((const byte *)nm, strlen(nm)) : mp_obj_new_str(nm, strlen(nm));
        if (tuples) {
            mp_obj_t t[4] = {
                name, MP_OBJ_NEW_SMALL_INT(ents[i].dir ? 0x4000 : 0x8000), MP_OBJ_NEW_SMALL_INT(0),
                mp_obj_new_int(ents[i].dir ? 0 : (mp_int_t)ents[i].size),
            };
            name = mp_obj_new_tuple(4, t);
        }
        mp_obj_list_append(list, name);
    }
    return list;
}

static mp_obj_t os_listdir(size_t n_args, const mp_obj_t *args) {
    return list_dir(n_args, args, false);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(os_listdir_obj, 0, 1, os_listdir);

static mp_obj_t os_ilistdir(size_t n_args, const mp_obj_t *args) {
    return mp_getiter(list_dir(n_args, args, true), NULL);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(os_ilistdir_obj, 0, 1, os_ilistdir);

static mp_obj_t os_mkdir(mp_obj_t path) {
    char abs[RAMFS_NAME];
    path_arg(path, abs);
    if (abs[0] == 0 || find(abs) >= 0) {
        mp_raise_OSError(MP_EEXIST);
    }
    if (!parent_is_dir(abs)) {
        mp_raise_OSError(MP_ENOENT);
    }
    new_entry(abs, true);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(os_mkdir_obj, os_mkdir);

static mp_obj_t os_rmdir(mp_obj_t path) {
    char abs[RAMFS_NAME];
    path_arg(path, abs);
    int i = find(abs);
    if (abs[0] == 0) {
        mp_raise_OSError(MP_EBUSY);
    }
    if (i < 0) {
        mp_raise_OSError(MP_ENOENT);
    }
    if (!ents[i].dir) {
        mp_raise_OSError(MP_ENOTDIR);
    }
    for (int k = 0; k < RAMFS_MAX_ENTRIES; k++) {
        if (ents[k].name[0] && child_name(abs, ents[k].name)) {
            mp_raise_OSError(RAMFS_ENOTEMPTY);
        }
    }
    drop_entry(i);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(os_rmdir_obj, os_rmdir);

static mp_obj_t os_remove(mp_obj_t path) {
    char abs[RAMFS_NAME];
    path_arg(path, abs);
    int i = find(abs);
    if (i < 0) {
        mp_raise_OSError(abs[0] == 0 ? MP_EISDIR : MP_ENOENT);
    }
    if (ents[i].dir) {
        mp_raise_OSError(MP_EISDIR);
    }
    drop_entry(i);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(os_remove_obj, os_remove);

static mp_obj_t os_rename(mp_obj_t old_in, mp_obj_t new_in) {
    char from[RAMFS_NAME], to[RAMFS_NAME];
    path_arg(old_in, from);
    path_arg(new_in, to);
    int i = find(from);
    if (i < 0) {
        mp_raise_OSError(MP_ENOENT);
    }
    if (strcmp(from, to) == 0) {
        return mp_const_none;
    }
    if (!parent_is_dir(to) || to[0] == 0) {
        mp_raise_OSError(MP_ENOENT);
    }
    size_t fl = strlen(from);
    int j = find(to);
    if (ents[i].dir) {
        if (j >= 0) {
            mp_raise_OSError(MP_EEXIST);
        }
        if (strncmp(to, from, fl) == 0 && to[fl] == '/') {
            mp_raise_OSError(MP_EINVAL); /* into itself */
        }
        size_t tl = strlen(to);
        for (int k = 0; k < RAMFS_MAX_ENTRIES; k++) {
            if (ents[k].name[0] && strncmp(ents[k].name, from, fl) == 0 && ents[k].name[fl] == '/'
                && tl + strlen(ents[k].name + fl) + 1 > RAMFS_NAME) {
                mp_raise_OSError(RAMFS_ENAMETOOLONG);
            }
        }
        for (int k = 0; k < RAMFS_MAX_ENTRIES; k++) {
            if (ents[k].name[0] && strncmp(ents[k].name, from, fl) == 0 && ents[k].name[fl] == '/') {
                char nm[RAMFS_NAME];
                strcpy(nm, to);
                strcat(nm, ents[k].name + fl);
                strcpy(ents[k].name, nm);
            }
        }
    } else if (j >= 0) {
        if (ents[j].dir) {
            mp_raise_OSError(MP_EISDIR);
        }
        drop_entry(j); /* replace, as LittleFS and POSIX do */
    }
    strcpy(ents[i].name, to);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(os_rename_obj, os_rename);

static mp_obj_t os_getcwd(void) {
    vstr_t v;
    vstr_init(&v, strlen(cwd) + 1);
    vstr_add_char(&v, '/');
    vstr_add_str(&v, cwd);
    return mp_obj_new_str_from_vstr(&v);
}
static MP_DEFINE_CONST_FUN_OBJ_0(os_getcwd_obj, os_getcwd);

static mp_obj_t os_chdir(mp_obj_t path) {
    char abs[RAMFS_NAME];
    path_arg(path, abs);
    if (!is_dir(abs)) {
        mp_raise_OSError(find(abs) >= 0 ? MP_ENOTDIR : MP_ENOENT);
    }
    strcpy(cwd, abs);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(os_chdir_obj, os_chdir);

static mp_obj_t os_statvfs(mp_obj_t path) {
    (void)mp_obj_str_get_str(path);
    size_t used = 0;
    for (int i = 0; i < RAMFS_MAX_ENTRIES; i++) {
        used += ents[i].name[0] != 0;
    }
    mp_obj_t t[10] = {
        MP_OBJ_NEW_SMALL_INT(RAMFS_BLK), MP_OBJ_NEW_SMALL_INT(RAMFS_BLK), MP_OBJ_NEW_SMALL_INT(RAMFS_NBLK),
        MP_OBJ_NEW_SMALL_INT(free_blocks()), MP_OBJ_NEW_SMALL_INT(free_blocks()),
        MP_OBJ_NEW_SMALL_INT(RAMFS_MAX_ENTRIES), MP_OBJ_NEW_SMALL_INT(RAMFS_MAX_ENTRIES - used),
        MP_OBJ_NEW_SMALL_INT(RAMFS_MAX_ENTRIES - used), MP_OBJ_NEW_SMALL_INT(0),
        MP_OBJ_NEW_SMALL_INT(RAMFS_NAME - 1),
    };
    return mp_obj_new_tuple(10, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(os_statvfs_obj, os_statvfs);

static const qstr uname_fields[] = {
    MP_QSTR_sysname, MP_QSTR_nodename, MP_QSTR_release, MP_QSTR_version, MP_QSTR_machine,
};
static MP_DEFINE_STR_OBJ(uname_sysname_obj, "qemu");
static MP_DEFINE_STR_OBJ(uname_nodename_obj, "qemu");
static MP_DEFINE_STR_OBJ(uname_release_obj, MICROPY_VERSION_STRING);
static MP_DEFINE_STR_OBJ(uname_version_obj, MICROPY_VERSION_STRING " (mpyml QEMU port)");
static MP_DEFINE_STR_OBJ(uname_machine_obj, MICROPY_BANNER_MACHINE);
static MP_DEFINE_ATTRTUPLE(uname_info_obj, uname_fields, 5,
    MP_ROM_PTR(&uname_sysname_obj), MP_ROM_PTR(&uname_nodename_obj), MP_ROM_PTR(&uname_release_obj),
    MP_ROM_PTR(&uname_version_obj), MP_ROM_PTR(&uname_machine_obj));

static mp_obj_t os_uname(void) {
    return MP_OBJ_FROM_PTR(&uname_info_obj);
}
static MP_DEFINE_CONST_FUN_OBJ_0(os_uname_obj, os_uname);

static mp_obj_t os_sync(void) {
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(os_sync_obj, os_sync);

static const mp_rom_map_elem_t os_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_os) },
    { MP_ROM_QSTR(MP_QSTR_stat), MP_ROM_PTR(&os_stat_obj) },
    { MP_ROM_QSTR(MP_QSTR_listdir), MP_ROM_PTR(&os_listdir_obj) },
    { MP_ROM_QSTR(MP_QSTR_ilistdir), MP_ROM_PTR(&os_ilistdir_obj) },
    { MP_ROM_QSTR(MP_QSTR_mkdir), MP_ROM_PTR(&os_mkdir_obj) },
    { MP_ROM_QSTR(MP_QSTR_rmdir), MP_ROM_PTR(&os_rmdir_obj) },
    { MP_ROM_QSTR(MP_QSTR_remove), MP_ROM_PTR(&os_remove_obj) },
    { MP_ROM_QSTR(MP_QSTR_rename), MP_ROM_PTR(&os_rename_obj) },
    { MP_ROM_QSTR(MP_QSTR_getcwd), MP_ROM_PTR(&os_getcwd_obj) },
    { MP_ROM_QSTR(MP_QSTR_chdir), MP_ROM_PTR(&os_chdir_obj) },
    { MP_ROM_QSTR(MP_QSTR_statvfs), MP_ROM_PTR(&os_statvfs_obj) },
    { MP_ROM_QSTR(MP_QSTR_uname), MP_ROM_PTR(&os_uname_obj) },
    { MP_ROM_QSTR(MP_QSTR_sync), MP_ROM_PTR(&os_sync_obj) },
    { MP_ROM_QSTR(MP_QSTR_sep), MP_ROM_QSTR(MP_QSTR__slash_) },
};
static MP_DEFINE_CONST_DICT(os_globals, os_globals_table);

const mp_obj_module_t mpport_os_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&os_globals,
};
MP_REGISTER_MODULE(MP_QSTR_os, mpport_os_module);
