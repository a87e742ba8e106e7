/*
 * Prints the configuration reference generated from config/'s key table. The docs.readme test
 * compares it with README.md's section, so the README cannot drift from the code.
 */
#include "cfg.h"

#include <stdio.h>

int main(void)
{
    cfg_print_reference_md(stdout);
    return 0;
}
