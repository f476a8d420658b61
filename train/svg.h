/* svg.h: line charts as inline SVG for the run report (qat report): axes
 * with numbered ticks (linear, or log when asked), one polyline per series
 * with a legend, optional vertical marks (a quantizer's levels). No script,
 * no external file: the text goes straight into an HTML page. */
#ifndef QAT_SVG_H
#define QAT_SVG_H

#include <stdio.h>

/* One curve: n points (x[i], y[i]); a y that is NaN (or <= 0 on a log
 * axis) breaks the line. label may be NULL (no legend entry). */
typedef struct {
    const double *x, *y;
    int n;
    const char *label;
    int color; /* index into the palette (wraps around) */
    int dash;  /* 0 solid, 1 dashed, 2 dotted */
} qat_svg_series;

typedef struct {
    const char *id;     /* data-chart attribute (what a test looks for) */
    const char *title;
    const char *xlabel, *ylabel;
    int logy;           /* 1 log, 0 linear, -1 log when the positive values span 1.5 decades or more */
    int yzero;          /* linear: the axis starts at 0 (counts, rates); else at the data's nice floor */
    int xint;           /* 1: x ticks are integers (epochs) */
    int steps;          /* 1: draw each series as steps centred on x (a histogram) */
    const double *marks; /* vertical dashed lines at these x, labelled mark_label in the legend */
    int nmarks;
    const char *mark_label;
    int width, height;  /* pixels; 0: 460 x 280 */
} qat_svg_chart;

/* Writes <svg class="chart" data-chart="ID"> ... </svg> to f; a chart with
 * no finite point says so in its plot area. Write errors show in ferror(f). */
void qat_svg_chart_write(FILE *f, const qat_svg_chart *c, const qat_svg_series *s, int ns);

/* The palette's colour i (wraps around), as "#rrggbb". */
const char *qat_svg_color(int i);

/* s with &, <, >, " escaped for HTML text and attributes. */
void qat_svg_escape(FILE *f, const char *s);

#endif
