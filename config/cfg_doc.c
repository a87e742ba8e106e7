/*
 * Documentation generated from the key table: the configuration part of --help (plain text
 * wrapped at 100 columns) and the README's configuration reference (Markdown, one table per
 * section). Both are complete by construction: a key in the table appears in both. No parsing,
 * no snapshot: this describes the keys, not a configuration.
 */
#include "cfg_int.h"

#include <stdio.h>
#include <string.h>

#define HELP_WIDTH 100

static const char help_intro[] =
    "Configuration (an INI file, -c FILE). Every key can also be set in the environment as "
    "RSPROXY_<SECTION>_<KEY> (upper case), which wins over the file. Booleans take true/false, "
    "yes/no, on/off or 1/0; lists are comma-separated; values are taken literally, without "
    "quotes. Keys marked reloadable take effect for new connections on SIGHUP; the others need a "
    "restart.";

/* Writes text word by word, starting at column `col`, wrapping to `indent` spaces. */
static void wrap(FILE *out, const char *text, int indent, int col)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        int wl = (int)(p - w);
        if (col > indent && col + 1 + wl > HELP_WIDTH) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        } else if (col < indent) {
            fprintf(out, "%*s", indent - col, "");
            col = indent;
        }
        fwrite(w, 1, (size_t)wl, out);
        col += wl;
    }
    fputc('\n', out);
}

/* "1..65535", "trust | scram-sha-256", ... into buf. */
static void describe_type(const cfg_key_t *k, char *buf, size_t buflen)
{
    size_t o = 0;
    buf[0] = '\0';
    switch (k->type) {
    case CFG_INT:
        snprintf(buf, buflen, "%d..%d", k->min, k->max);
        break;
    case CFG_ENUM:
        for (int i = 0; k->enums[i]; i++) {
            int w = snprintf(buf + o, buflen - o, "%s%s", i ? " | " : "", k->enums[i]);
            if (w < 0 || (size_t)w >= buflen - o)
                break;
            o += (size_t)w;
        }
        break;
    case CFG_BOOL:
        snprintf(buf, buflen, "boolean");
        break;
    case CFG_LIST:
        snprintf(buf, buflen, "list");
        break;
    case CFG_SECRET:
        snprintf(buf, buflen, "secret");
        break;
    case CFG_STR:
        snprintf(buf, buflen, "string");
        break;
    }
}

void cfg_print_help(FILE *out)
{
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n);
    wrap(out, help_intro, 0, 0);
    const char *section = NULL;
    for (size_t i = 0; i < n; i++) {
        const cfg_key_t *k = &keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(out, "\n[%s]\n", section);
            wrap(out, cfg_section_doc(section), 2, 0);
        }
        char type[128];
        describe_type(k, type, sizeof(type));
        fprintf(out, "  %s =%s%s  (%s; %s)\n", k->name, k->def[0] ? " " : "", k->def, type,
                k->reloadable ? "reloadable" : "restart");
        wrap(out, k->doc, 6, 0);
    }
}

/* Writes s escaped for a Markdown table cell: '|' would end the cell and <...> would be taken
 * for an HTML tag (the docs say IAM:<user> and .s.PGSQL.<listen_port>). */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '|':
            fputs("\\|", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        default:
            fputc(*s, out);
        }
    }
}

static void md_meaning(FILE *out, const cfg_key_t *k)
{
    md_cell(out, k->doc);
    switch (k->type) {
    case CFG_INT:
        fprintf(out, " Range: %d to %d.", k->min, k->max);
        break;
    case CFG_ENUM:
        fputs(" Values:", out);
        for (int i = 0; k->enums[i]; i++)
            fprintf(out, "%s `%s`", i ? "," : "", k->enums[i]);
        fputc('.', out);
        break;
    case CFG_BOOL:
        fputs(" Boolean.", out);
        break;
    case CFG_LIST: /* the docs say "comma-separated" already */
        break;
    case CFG_SECRET:
        fputs(" Secret: never logged, shown as `***` in dumps.", out);
        break;
    case CFG_STR:
        break;
    }
}

void cfg_print_reference_md(FILE *out)
{
    size_t n;
    const cfg_key_t *keys = cfg_keys(&n);
    fputs("## Configuration reference\n\n"
          "rsproxy reads one INI file (`rsproxy -c FILE`; `rsproxy --check -c FILE` validates it "
          "and reports every\nproblem as `file:line: section.key: message`). Every key can also "
          "be set in the environment as\n`RSPROXY_<SECTION>_<KEY>` (upper case), which wins "
          "over the file. Booleans take `true`/`false`,\n`yes`/`no`, `on`/`off` or `1`/`0`; "
          "lists are comma-separated; values are taken literally, without\nquotes. Keys with "
          "*yes* under Reload take effect for new connections on SIGHUP; the others need a\n"
          "restart.\n",
          out);
    const char *section = NULL;
    for (size_t i = 0; i < n; i++) {
        const cfg_key_t *k = &keys[i];
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            fprintf(out, "\n### [%s]\n\n", section);
            md_cell(out, cfg_section_doc(section));
            fputs("\n\n| Key | Default | Reload | Environment variable | Meaning |\n"
                  "|---|---|---|---|---|\n",
                  out);
        }
        char env[96];
        cfg_key_env_name(k, env, sizeof(env));
        fprintf(out, "| `%s` | ", k->name);
        if (k->def[0])
            fprintf(out, "`%s`", k->def);
        else
            fputs("*(empty)*", out);
        fprintf(out, " | %s | `%s` | ", k->reloadable ? "yes" : "no", env);
        md_meaning(out, k);
        fputs(" |\n", out);
    }
}
