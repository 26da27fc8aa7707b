// SPDX-License-Identifier: MIT
#include <stdio.h>

#include "commands.h"
#include "kha/common.h"
#include "kha/banned.h"

int cmd_elect_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "kha elect: not implemented yet\n");
	return KHA_EXIT_SOFTWARE;
}
