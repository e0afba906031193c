# Job backend of the recipe, sourced by p4q.sh after its options are parsed.
#
# Every parallel step runs as
#   $train_cmd [--gpu N] [--mem SIZE] [--num_threads N] [--max_jobs_run N] JOB=1:N LOG COMMAND...
# (JOB replaced by the job index in LOG and COMMAND; see utils/run_local.sh --help).
#   train_cmd:  CPU work (collect_stats, training on CPU)
#   cuda_cmd:   training when --ngpu > 0
#   decode_cmd: decoding
#
# cmd_backend (p4q.sh --cmd_backend, or $P4Q_CMD_BACKEND):
#   local  parallel processes on this machine (default)
#   slurm  one 'sbatch --wait --array' per step; site options in $P4Q_SBATCH_OPTS,
#          e.g. export P4Q_SBATCH_OPTS="--partition=gpu --account=myproj"
cmd_backend=${cmd_backend:-${P4Q_CMD_BACKEND:-local}}

case $cmd_backend in
  local)
    train_cmd="utils/run_local.sh"
    cuda_cmd="utils/run_local.sh"
    decode_cmd="utils/run_local.sh"
    ;;
  slurm)
    train_cmd="utils/run_slurm.sh --mem 8G --num_threads 2"
    cuda_cmd="utils/run_slurm.sh --mem 16G --num_threads 4"
    decode_cmd="utils/run_slurm.sh --mem 4G --num_threads 1"
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local or slurm)" >&2
    return 1
    ;;
esac
