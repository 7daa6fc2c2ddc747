/*
 * libreport.h - a stand-in for a third-party library (logging, monitoring,
 * a plugin host...) that the application calls without knowing it forks.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef LIBREPORT_H
#define LIBREPORT_H

/* Log a status line.  Returns 0, or -1 with errno set if the helper could not run. */
int report_status(const char *what);

#endif /* LIBREPORT_H */
