/*
** `--config FILE` for every command: a JSON object or TOML key = value
** lines whose keys are option names (see config.c for the rules).
*/
#ifndef RN_CONFIG_H
#define RN_CONFIG_H

/* If argv (a command's arguments, argv[0] the command) holds --config
** FILE, builds a new vector: argv[0], the file's options, then argv's
** others, so that the command line overrides the file. *out_argv is NULL
** when there is no --config (use argv). Returns 0, or -1 after printing an
** error (a usage error: exit 2). Free with rn_config_free. */
int rn_config_expand(int argc, char **argv, int *out_argc, char ***out_argv);
void rn_config_free(int argc, char **argv);

#endif
