/* ab.c: two builds of runtime/kern_avx512.c (kA, kB) in one process on one
 * shape: B's C is compared with A's ("DIFFER"; AB_NOCHECK=1 times it
 * anyway), then R interleaved rounds of each; best and median per call.
 * Usage: ab M N K [R] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "kern.h"
extern const qatrt_kernels kA, kB;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return (x>y)-(x<y);}
int main(int argc,char**argv){
  int M=atoi(argv[1]),N=atoi(argv[2]),K=atoi(argv[3]);int R=argc>4?atoi(argv[4]):200;
  int kw=(K+63)/64;
  uint64_t*A=aligned_alloc(64,M*kw*8+64),*B=aligned_alloc(64,(size_t)N*kw*8+64);
  srand(1);for(int i=0;i<M*kw;i++)A[i]=rand()*0x9e3779b97f4a7c15ull;
  for(size_t i=0;i<(size_t)N*kw;i++)B[i]=rand()*0x9e3779b97f4a7c15ull;
  if(K%64){uint64_t m=(1ull<<(K%64))-1;for(int i=0;i<M;i++)A[i*kw+kw-1]&=m;for(int i=0;i<N;i++)B[(size_t)i*kw+kw-1]&=m;}
  size_t pw=qatrt_bpanel_words(N,kw);uint64_t*P=aligned_alloc(64,pw*8+64);
  qatrt_pack_bpanel(N,kw,B,kw,P);
  int32_t*C=malloc((size_t)M*N*4+64),*C2=malloc((size_t)M*N*4+64);
  kA.bgemm_pk(M,N,kw,K,A,kw,P,C,N);kB.bgemm_pk(M,N,kw,K,A,kw,P,C2,N);
  if(memcmp(C,C2,(size_t)M*N*4)){printf("DIFFER\n");if(!getenv("AB_NOCHECK"))return 1;}
  double t1=now();long calls=1;for(;;){double t0=now();for(long i=0;i<calls;i++)kA.bgemm_pk(M,N,kw,K,A,kw,P,C,N);if(now()-t0>0.002)break;calls*=2;}
  (void)t1;
  double *ta=malloc(R*8),*tb=malloc(R*8);
  for(int r=0;r<R;r++){
    double t0=now();for(long i=0;i<calls;i++)kA.bgemm_pk(M,N,kw,K,A,kw,P,C,N);ta[r]=(now()-t0)/calls;
    t0=now();for(long i=0;i<calls;i++)kB.bgemm_pk(M,N,kw,K,A,kw,P,C,N);tb[r]=(now()-t0)/calls;}
  qsort(ta,R,8,cmpd);qsort(tb,R,8,cmpd);
  printf("%dx%dx%d  A best %.3f med %.3f | B best %.3f med %.3f us | B/A best %.3f med %.3f\n",M,N,K,ta[0]*1e6,ta[R/2]*1e6,tb[0]*1e6,tb[R/2]*1e6,tb[0]/ta[0],tb[R/2]/ta[R/2]);
  return 0;}
