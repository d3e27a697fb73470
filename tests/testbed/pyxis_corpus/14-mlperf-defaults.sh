#!/bin/bash
# pattern: MLPerf run.sub: settings as : "${VAR:=default}", mounts joined in a string, a named container
# needs: data
# expect: ^:::MLLOG run_start on n[12], data=3 samples$
# expect: ^:::MLLOG run_stop status=success$
# expect: ^results: run_stop status=success$
#SBATCH -N 1
#SBATCH --ntasks-per-node=1
#SBATCH --time=00:10:00

: "${CONT:=nvcr.io#nvidia/pytorch:23.10-py3}"
: "${DATADIR:=${PWD}/data}"
: "${LOGDIR:=${PWD}/results}"
readonly _cont_name=mlperf_bert
_cont_mounts="${DATADIR}:/data:ro,${LOGDIR}:/results,${PWD}:/workspace/bert"
mkdir -p "${LOGDIR}"

cat > run_and_time.sh <<'EOF'
#!/bin/sh
echo ":::MLLOG run_start on $(hostname), data=$(wc -l < /data/train.txt) samples"
echo ":::MLLOG run_stop status=success" | tee /results/result.log
EOF
chmod +x run_and_time.sh
srun --ntasks="${SLURM_JOB_NUM_NODES}" --container-image="${CONT}" --container-name="${_cont_name}" true
srun --kill-on-bad-exit=0 --container-name="${_cont_name}" --container-mounts="${_cont_mounts}" \
    --container-workdir=/workspace/bert ./run_and_time.sh
echo "results: $(cut -d' ' -f2- results/result.log)"
