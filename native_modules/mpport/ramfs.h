/* ramfs.h - the port's RAM filesystem (ramfs.c). */
#ifndef MPPORT_RAMFS_H
#define MPPORT_RAMFS_H

void ramfs_format(void);     /* empty filesystem (power-on) */
void ramfs_soft_reset(void); /* files survive a soft reset; the working directory returns to "/" */

#endif
