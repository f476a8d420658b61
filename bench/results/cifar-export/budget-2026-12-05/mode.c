/* mode.c: bgemm_pk (kA) on 64 x 50 x 500 and the registers-only bound (the
 * loop of bench/xor_bound.h, as bench_kernels times it) alternately in one
 * process, one line per point of 20 x (20,000 kernel calls, 4 bound calls):
 * does the share of the bound change over time within a process?
 * Usage: mode SECONDS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "kern.h"
#include "xor_bound.h"
extern const qatrt_kernels kA;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
int main(int argc,char**argv){
  int M=64,N=50,K=500,kw=8; double secs=argc>1?atof(argv[1]):60;
  uint64_t*A=aligned_alloc(64,M*kw*8),*B=aligned_alloc(64,N*kw*8);
  srand(1);for(int i=0;i<M*kw;i++)A[i]=rand()*0x9e3779b97f4a7c15ull;
  for(int i=0;i<N*kw;i++)B[i]=rand()*0x9e3779b97f4a7c15ull;
  uint64_t m=(1ull<<(K%64))-1;for(int i=0;i<M;i++)A[i*kw+kw-1]&=m;for(int i=0;i<N;i++)B[i*kw+kw-1]&=m;
  uint64_t*P=aligned_alloc(64,qatrt_bpanel_words(N,kw)*8); qatrt_pack_bpanel(N,kw,B,kw,P);
  int32_t*C=aligned_alloc(64,M*N*4+64);
  double T0=now(); int k=0;
  while(now()-T0<secs){ double tk=0,tb=0;
    for(int r=0;r<20;r++){ double t0=now(); for(int i=0;i<20000;i++) kA.bgemm_pk(M,N,kw,K,A,kw,P,C,N); double t1=now(); for(int i=0;i<4;i++) xor_bound_call(); double t2=now(); tk+=t1-t0; tb+=t2-t1; }
    double kr=(double)M*N*K*20000*20/tk, br=XOR_BOUND_MACS*4*20/tb;
    printf("%5.1f s: kernel %.0f GMAC/s, bound %.0f, %.1f%%\n", now()-T0, kr*1e-9, br*1e-9, 100*kr/br); fflush(stdout); k++; }
  return 0;}
