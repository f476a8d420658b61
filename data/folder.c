/* folder.c: image folders (DIR/train/<class>/IMAGE, DIR/test/<class>/IMAGE)
 * decoded by stb_image, brought to one size and channel count. Classes and
 * files are taken in byte order of their names, so the dataset never depends
 * on the order a file system lists them in. The stb implementations come from
 * Debian's libstb (pkg-config stb), which train/deploy.c links as well: none
 * of our files defines STB_IMAGE_IMPLEMENTATION. */
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include "dataset.h"
#include "datautil.h"

#define FOLDER_MAX_FILE ((long long)1 << 30) /* stb takes an int length */

static const char *const folder_exts[] = {".png", ".jpg", ".jpeg", ".bmp"};

int qat_data_folder_probe(const char *path, char *out, size_t cap, char *why, size_t wcap)
{
    char p[4200];
    if (!qat_data_is_dir(path)) {
        snprintf(why, wcap, "%s", qat_data_is_file(path) ? "not a folder" : "no such folder");
        return 0;
    }
    snprintf(p, sizeof p, "%s/train", path);
    if (!qat_data_is_dir(p)) {
        snprintf(why, wcap, "no train/ folder in it");
        return 0;
    }
    snprintf(out, cap, "%s", path);
    return 1;
}

/* ---- listing ---------------------------------------------------------------- */

typedef struct {
    char **names;
    int n, cap;
} name_list;

static void list_free(name_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

static int by_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof folder_exts / sizeof folder_exts[0]; i++) {
        size_t e = strlen(folder_exts[i]);
        if (n > e && strcasecmp(name + n - e, folder_exts[i]) == 0)
            return 1;
    }
    return 0;
}

/* The entries of dir that are folders (dirs = 1) or image files (dirs = 0),
 * hidden ones left out, sorted by bytes. */
static qat_status list_dir(const char *dir, int dirs, name_list *l)
{
    memset(l, 0, sizeof *l);
    DIR *d = opendir(dir);
    if (!d)
        return qat_error_set(QAT_ERR_IO, "%s: cannot open the folder: %s, expected %s", dir,
                             strerror(errno),
                             dirs ? "a folder of class folders" : "a folder of images");
    struct dirent *e;
    char p[4200];
    qat_status s = QAT_OK;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int k = snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (k < 0 || (size_t)k >= sizeof p) {
            s = qat_error_set(QAT_ERR_IO, "%s/%s: path longer than %zu bytes", dir, e->d_name, sizeof p - 1);
            break;
        }
        if (dirs ? !qat_data_is_dir(p) : !(is_image_name(e->d_name) && qat_data_is_file(p)))
            continue;
        if (l->n == QAT_DATA_MAX_IMAGES) {
            s = qat_error_set(QAT_ERR_FORMAT, "%s: more than %d entries, expected fewer", dir,
                              QAT_DATA_MAX_IMAGES);
            break;
        }
        if (l->n == l->cap) {
            int ncap = l->cap ? l->cap * 2 : 64;
            char **nn = realloc(l->names, (size_t)ncap * sizeof *nn);
            if (!nn) {
                s = qat_error_set(QAT_ERR_MEMORY, "%s: out of memory listing the folder", dir);
                break;
            }
            l->names = nn;
            l->cap = ncap;
        }
        if (!(l->names[l->n] = strdup(e->d_name))) {
            s = qat_error_set(QAT_ERR_MEMORY, "%s: out of memory listing the folder", dir);
            break;
        }
        l->n++;
    }
    closedir(d);
    if (s) {
        list_free(l);
        return s;
    }
    if (l->n > 1)
        qsort(l->names, (size_t)l->n, sizeof *l->names, by_bytes);
    return QAT_OK;
}

/* ---- one image --------------------------------------------------------------- */

typedef struct {
    int c, h, w, resize;
    uint8_t *file;       /* the current file's bytes */
    size_t file_cap;
    uint8_t *sized;      /* a resized image, HWC */
} folder_ctx;

static qat_status read_file(folder_ctx *x, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return qat_error_set(QAT_ERR_IO, "%s: cannot open: %s, expected a readable image", path,
                             strerror(errno));
    struct stat st;
    qat_status s = QAT_OK;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (long long)st.st_size > FOLDER_MAX_FILE) {
        s = qat_error_set(QAT_ERR_FORMAT, "%s: file of %lld bytes, expected an image of at most "
                          "%lld bytes", path, (long long)st.st_size, FOLDER_MAX_FILE);
        goto done;
    }
    size_t n = (size_t)st.st_size;
    if (n + 1 > x->file_cap) {
        uint8_t *nb = realloc(x->file, n + 1);
        if (!nb) {
            s = qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %zu bytes", path, n);
            goto done;
        }
        x->file = nb;
        x->file_cap = n + 1;
    }
    *len = fread(x->file, 1, n + 1, f);
    if (ferror(f))
        s = qat_error_set(QAT_ERR_IO, "%s: byte %zu: cannot read: %s", path, *len,
                          strerror(errno));
    else if (*len != n)
        s = qat_error_set(QAT_ERR_IO, "%s: %zu bytes read, the file has %zu: it changed while "
                          "being read", path, *len, n);
done:
    fclose(f);
    return s;
}

/* The size stb reads from the file's header, without decoding it. */
static qat_status image_info(folder_ctx *x, const char *path, int *w, int *h, size_t *len)
{
    qat_status s = read_file(x, path, len);
    if (s)
        return s;
    int comp;
    if (!stbi_info_from_memory(x->file, (int)*len, w, h, &comp))
        return qat_error_set(QAT_ERR_FORMAT, "%s: cannot decode the image: %s, expected a PNG, "
                             "JPEG or BMP file", path, stbi_failure_reason());
    if (*w < 1 || *h < 1 || (uint64_t)*w * (uint64_t)*h > QAT_DATA_MAX_PIXELS)
        return qat_error_set(QAT_ERR_FORMAT, "%s: image of %dx%d pixels, expected at most %llu "
                             "pixels", path, *w, *h, (unsigned long long)QAT_DATA_MAX_PIXELS);
    return QAT_OK;
}

/* Decodes path into out (c*h*w bytes, CHW). */
static qat_status image_read(folder_ctx *x, const char *path, uint8_t *out)
{
    int iw, ih, comp;
    size_t len;
    qat_status s = image_info(x, path, &iw, &ih, &len);
    if (s)
        return s;
    if ((iw != x->w || ih != x->h) && !x->resize)
        return qat_error_set(QAT_ERR_SHAPE, "%s: image is %dx%d (width x height), expected "
                             "%dx%d like the set (resize = 1 resizes it)",
                             path, iw, ih, x->w, x->h);
    /* stb converts channels itself: grey is repeated into RGB, RGB becomes
     * its luma (77 R + 150 G + 29 B) >> 8, alpha is dropped */
    uint8_t *px = stbi_load_from_memory(x->file, (int)len, &iw, &ih, &comp, x->c);
    if (!px)
        return qat_error_set(QAT_ERR_FORMAT, "%s: cannot decode the image: %s, expected a PNG, "
                             "JPEG or BMP file", path, stbi_failure_reason());
    const uint8_t *hwc = px;
    if (iw != x->w || ih != x->h) {
        if (!stbir_resize_uint8(px, iw, ih, 0, x->sized, x->w, x->h, 0, x->c)) {
            stbi_image_free(px);
            return qat_error_set(QAT_ERR_MEMORY, "%s: cannot resize %dx%d to %dx%d (out of "
                                 "memory)", path, iw, ih, x->w, x->h);
        }
        hwc = x->sized;
    }
    size_t plane = (size_t)x->h * (size_t)x->w;
    for (int ch = 0; ch < x->c; ch++)
        for (size_t p = 0; p < plane; p++)
            out[(size_t)ch * plane + p] = hwc[p * (size_t)x->c + (size_t)ch];
    stbi_image_free(px);
    return QAT_OK;
}

/* ---- the set ------------------------------------------------------------------- */

/* Lists every image of split dir/<which>/<class>/ into files (paths relative
 * to dir/<which>) and counts per class. */
typedef struct {
    name_list files[256];
    int n;
} split_list;

static void split_free(split_list *sl, int nclass)
{
    for (int k = 0; k < nclass; k++)
        list_free(&sl->files[k]);
}

static qat_status list_split(const char *root, const name_list *classes, int need_images,
                             split_list *sl)
{
    char p[4400];
    sl->n = 0;
    for (int k = 0; k < classes->n; k++) {
        snprintf(p, sizeof p, "%s/%s", root, classes->names[k]);
        qat_status s = list_dir(p, 0, &sl->files[k]);
        if (s)
            return s;
        if (need_images && sl->files[k].n == 0)
            return qat_error_set(QAT_ERR_FORMAT, "%s: no .png, .jpg, .jpeg or .bmp file, expected "
                                 "at least one image in every class folder of train/", p);
        if (sl->files[k].n > QAT_DATA_MAX_IMAGES - sl->n)
            return qat_error_set(QAT_ERR_FORMAT, "%s: more than %d images, expected fewer", root,
                                 QAT_DATA_MAX_IMAGES);
        sl->n += sl->files[k].n;
    }
    return QAT_OK;
}

/* test/ must hold the class folders of train/, no more and no fewer. */
static qat_status same_classes(const char *test_dir, const name_list *train,
                               const name_list *test)
{
    int i = 0, j = 0;
    while (i < train->n || j < test->n) {
        int c = i == train->n ? 1 : j == test->n ? -1 : strcmp(train->names[i], test->names[j]);
        if (c < 0)
            return qat_error_set(QAT_ERR_FORMAT, "%s: no class folder '%s', expected the same "
                                 "class folders as train/ (it has %d, test/ %d)",
                                 test_dir, train->names[i], train->n, test->n);
        if (c > 0)
            return qat_error_set(QAT_ERR_FORMAT, "%s: class folder '%s' is not in train/, "
                                 "expected the same class folders as train/ (it has %d, test/ %d)",
                                 test_dir, test->names[j], train->n, test->n);
        i++;
        j++;
    }
    return QAT_OK;
}

static qat_status fill_split(folder_ctx *x, const char *root, const name_list *classes,
                             const split_list *sl, qat_dataset *ds)
{
    size_t per = (size_t)x->c * (size_t)x->h * (size_t)x->w;
    if ((uint64_t)sl->n * per > QAT_DATA_MAX_BYTES)
        return qat_error_set(QAT_ERR_FORMAT, "%s: %d images of %zu bytes exceed %llu bytes, "
                             "expected a smaller set or size", root, sl->n, per,
                             (unsigned long long)QAT_DATA_MAX_BYTES);
    ds->images = malloc(sl->n ? (size_t)sl->n * per : 1);
    ds->labels = malloc(sl->n ? (size_t)sl->n : 1);
    if (!ds->images || !ds->labels)
        return qat_error_set(QAT_ERR_MEMORY, "%s: out of memory for %d images", root, sl->n);
    char p[8600];
    size_t i = 0;
    for (int k = 0; k < classes->n; k++)
        for (int f = 0; f < sl->files[k].n; f++, i++) {
            snprintf(p, sizeof p, "%s/%s/%s", root, classes->names[k], sl->files[k].names[f]);
            qat_status s = image_read(x, p, ds->images + i * per);
            if (s)
                return s;
            ds->labels[i] = (uint8_t)k;
        }
    ds->n = sl->n;
    ds->c = x->c;
    ds->h = x->h;
    ds->w = x->w;
    ds->nclass = classes->n;
    return qat_data_names_set(ds, (const char *const *)classes->names, classes->n);
}

qat_status qat_data_load_folder(qat_dataset *train, qat_dataset *test, const char *dir,
                                const qat_data_opts *opts)
{
    if (!train || !test || train == test || !dir)
        return qat_error_set(QAT_ERR_ARG, "qat_data_load_folder: train and test must be two "
                             "datasets and dir a folder");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    qat_data_opts o = {0};
    if (opts)
        o = *opts;
    qat_dataset_info info;
    qat_status s = qat_data_info("folder", &o, &info);
    if (s)
        return s;

    char troot[4200], eroot[4200];
    snprintf(troot, sizeof troot, "%s/train", dir);
    snprintf(eroot, sizeof eroot, "%s/test", dir);
    name_list classes = {0}, tclasses = {0};
    split_list *sl = calloc(2, sizeof *sl); /* 256 lists each: big for a stack */
    folder_ctx x = {.c = info.c, .h = info.h, .w = info.w, .resize = o.resize};
    qat_dataset d[2];
    memset(d, 0, sizeof d);
    if (!sl) {
        s = qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", dir);
        goto done;
    }
    if ((s = list_dir(troot, 1, &classes)))
        goto done;
    if (classes.n == 0 || classes.n > 256) {
        s = qat_error_set(QAT_ERR_FORMAT, "%s: %d class folders, expected 1..256 (labels are "
                          "bytes)", troot, classes.n);
        goto done;
    }
    if (!qat_data_is_dir(eroot)) {
        s = qat_error_set(QAT_ERR_IO, "%s: no such folder, expected test/<class>/ beside "
                          "train/<class>/", eroot);
        goto done;
    }
    if ((s = list_dir(eroot, 1, &tclasses)) || (s = same_classes(eroot, &classes, &tclasses)) ||
        (s = list_split(troot, &classes, 1, &sl[0])) ||
        (s = list_split(eroot, &classes, 0, &sl[1])))
        goto done;
    if (sl[1].n == 0) {
        s = qat_error_set(QAT_ERR_FORMAT, "%s: no .png, .jpg, .jpeg or .bmp file in any class "
                          "folder, expected at least one test image", eroot);
        goto done;
    }
    if (x.h == 0) { /* the set's size is its first image's */
        char p[8600];
        size_t len;
        snprintf(p, sizeof p, "%s/%s/%s", troot, classes.names[0], sl[0].files[0].names[0]);
        if ((s = image_info(&x, p, &x.w, &x.h, &len)))
            goto done;
    }
    if (!(x.sized = malloc((size_t)x.c * (size_t)x.h * (size_t)x.w))) {
        s = qat_error_set(QAT_ERR_MEMORY, "%s: out of memory", dir);
        goto done;
    }
    if ((s = fill_split(&x, troot, &classes, &sl[0], &d[0])) ||
        (s = fill_split(&x, eroot, &classes, &sl[1], &d[1])))
        goto done;
    for (int i = 0; i < 2; i++) {
        snprintf(d[i].name, sizeof d[i].name, "folder");
        snprintf(d[i].path, sizeof d[i].path, "%s", dir);
    }
done:
    if (sl) {
        split_free(&sl[0], classes.n < 256 ? classes.n : 256);
        split_free(&sl[1], classes.n < 256 ? classes.n : 256);
    }
    free(sl);
    list_free(&classes);
    list_free(&tclasses);
    free(x.file);
    free(x.sized);
    if (s) {
        qat_dataset_free(&d[0]);
        qat_dataset_free(&d[1]);
        return s;
    }
    *train = d[0];
    *test = d[1];
    return QAT_OK;
}
