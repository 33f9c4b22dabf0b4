/* SPDX-License-Identifier: MIT */
/*
 * log.c - timestamped lines on stderr ("zbusd[PID] HH:MM:SS.mmm text").
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int zbd_log_quiet;

void zbd_log(const char *fmt, ...)
{
	struct timeval tv;
	struct tm tm;
	va_list ap;

	if (zbd_log_quiet)
		return;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	fprintf(stderr, "zbusd[%d] %02d:%02d:%02d.%03ld ", (int)getpid(),
		tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
