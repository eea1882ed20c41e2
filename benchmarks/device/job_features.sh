# The dense-head features of the shipped encoder (benchmarks/dense_head.py), one tar a block in /root/feat, fetched
# by a call of their own (`cp /root/feat/*.tar $OUT/`: about 15 MB each); status in /root/feat/status.
. benchmarks/device/env.sh
mkdir -p /root/feat
python -m benchmarks.dense_head features --layers ${LAYERS:-0,10,26,28} --device cuda --data /root/work/data/scifact \
  > /root/logs/features.log 2>&1
echo features rc=$? >> /root/feat/status
for L in runs/dense-head/L*; do tar cf /root/feat/features-$(basename $L).tar $L; done
echo features tar rc=$? >> /root/feat/status
