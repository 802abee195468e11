"""`python -m alignlab.train -c alignlab.yaml` is `alignlab train`, in a form `accelerate launch`
can start on every process:

    accelerate launch --multi_gpu --num_processes 4 -m alignlab.train -c alignlab.yaml

On CPUs, set ACCELERATE_USE_CPU=true with the same command (processes talk over gloo):
`accelerate launch --cpu` starts more than one process only through mpirun.
"""

import sys

from alignlab.cli import main

sys.argv = ["alignlab", "train", *sys.argv[1:]]
main()
