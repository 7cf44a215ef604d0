# LD_ABS/LD_IND in a program with a bpf-to-bpf call, and an empty .text.
	.text
	.section	socket,"ax",@progbits
	.globl	prog
	.type	prog,@function
prog:
	r6 = r1
	r0 = *(u16 *)skb[12]
	r7 = r0
	call sub
	r0 = *(u32 *)skb[r7]
	exit
	.type	sub,@function
sub:
	r0 = 1
	exit
