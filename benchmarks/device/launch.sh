# There: start job $JOB under setsid (it outlives the call), then show how it goes.
. benchmarks/device/env.sh
rm -f /root/logs/status
setsid nohup bash benchmarks/device/job_$JOB.sh > /root/logs/$JOB.out 2>&1 < /dev/null &
sleep ${WAIT:-60}; bash benchmarks/device/poll.sh
