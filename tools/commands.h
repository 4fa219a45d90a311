/* capsim subcommands: each takes its own argv (argv[0] is the subcommand)
 * and returns the exit code (see cli.h). */
#ifndef CAP_COMMANDS_H
#define CAP_COMMANDS_H

int cmd_decode(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_sign(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_fixtures(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_tck(int argc, char **argv);
int cmd_adapter(int argc, char **argv);
int cmd_sim(int argc, char **argv);
int cmd_swarm(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_scheduler(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_certify(int argc, char **argv);
int cmd_golden(int argc, char **argv);
int cmd_check_trace(int argc, char **argv);
int cmd_convert_trace(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
