/* SPDX-License-Identifier: MIT */
/*
 * report.h - zbus-bench's output, in the form bench_cfg asks for: a table,
 * JSON lines or CSV. Each line is flushed as it is printed.
 */
#ifndef ZBUS_BENCH_REPORT_H
#define ZBUS_BENCH_REPORT_H

#include <stddef.h>

#include "cell.h"
#include "transport.h"

/* The table's preamble: the machine, the pinning, the column heads. */
void report_machine(void);
/* CSV: the JSON fields as columns, empty where JSON says null. */
void report_csv_header(void);
/* A transport that cannot run here: said in the output, never silent. */
void report_skip(enum scenario sc, const struct transport *tp, size_t size,
		 const char *why);
/* The core-to-core round trip (c2c.h) measured before the rows that
 * follow, printed in each of them; 0: none. */
void report_set_c2c(double ns);
/* The output a row goes to: a table, JSON lines or CSV. */
void report_result(const struct cell *c, const struct result *res);

#endif /* ZBUS_BENCH_REPORT_H */
