# Functions as clang before 10 emits them: untyped (STT_NOTYPE) symbols, basic-block labels as
# local untyped symbols, and a call into .text from another section through a local label.
	.text
	.globl	global_fn2
global_fn2:
	r0 = r1
	r0 += 2
	exit
	.globl	global_fn
global_fn:
	r6 = r1
	call global_fn2
	if r0 == 0 goto LBB1_2
	r0 += 1
LBB1_2:
	exit
local_fn:
	r0 = 7
	exit

	.section	xdp,"ax",@progbits
	.globl	xdp_prog
xdp_prog:
	r1 = 0
	call global_fn
	r6 = r0
	call local_fn
	r0 += r6
	exit
