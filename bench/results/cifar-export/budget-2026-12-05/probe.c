/* probe.c: bgemm_pk (the AVX-512 table, linked as kA) on each shape given
 * as M N K triples, against the registers-only XOR+VPOPCNTQ+VPADDQ bound,
 * in interleaved rounds: the bound's loop is bench/xor_bound.h's, as
 * bench_kernels times it. Per shape: the median kernel against the median
 * bound, the best kernel round against the median bound (as first
 * written), and, added later the same day, the best against the best and
 * the deciles of the per-round ratio (kernel round r against bound round r).
 * Usage: probe ROUNDS (<= 1000) M N K [M N K ...] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>
#include "kern.h"
#include "xor_bound.h"
extern const qatrt_kernels kA;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+1e-9*t.tv_nsec;}
static int cmpd(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return (x>y)-(x<y);}
int main(int argc,char**argv){
  int R=argc>1?atoi(argv[1]):100; if(R<1||R>1000)return 2; int ns=(argc-2)/3;
  double bt[1000]; double *tt=malloc(sizeof(double)*R*ns);
  struct sh{int M,N,K,kw;uint64_t*A,*P;int32_t*C;long calls;} s[16];
  for(int q=0;q<ns;q++){int M=s[q].M=atoi(argv[2+3*q]),N=s[q].N=atoi(argv[3+3*q]),K=s[q].K=atoi(argv[4+3*q]);int kw=s[q].kw=(K+63)/64;
  uint64_t*A=aligned_alloc(64,M*kw*8+64),*B=aligned_alloc(64,(size_t)N*kw*8+64);
  srand(1);for(int i=0;i<M*kw;i++)A[i]=rand()*0x9e3779b97f4a7c15ull;
  for(size_t i=0;i<(size_t)N*kw;i++)B[i]=rand()*0x9e3779b97f4a7c15ull;
  if(K%64){uint64_t m=(1ull<<(K%64))-1;for(int i=0;i<M;i++)A[i*kw+kw-1]&=m;for(int i=0;i<N;i++)B[(size_t)i*kw+kw-1]&=m;}
  size_t pw=qatrt_bpanel_words(N,kw);uint64_t*P=aligned_alloc(64,pw*8+64);
  qatrt_pack_bpanel(N,kw,B,kw,P); s[q].A=A;s[q].P=P;s[q].C=aligned_alloc(64,(size_t)M*N*4+64);
  long calls=1;for(;;){double t0=now();for(long i=0;i<calls;i++)kA.bgemm_pk(M,N,kw,K,A,kw,P,s[q].C,N);if(now()-t0>0.002)break;calls*=2;} s[q].calls=calls;}
  long bc=1;for(;;){double t0=now();for(long i=0;i<bc;i++)xor_bound_call();if(now()-t0>0.002)break;bc*=2;}
  for(int r=0;r<R;r++){
    double t0=now();for(long i=0;i<bc;i++)xor_bound_call();bt[r]=(now()-t0)/bc;
    for(int q=0;q<ns;q++){t0=now();for(long i=0;i<s[q].calls;i++)kA.bgemm_pk(s[q].M,s[q].N,s[q].kw,s[q].K,s[q].A,s[q].kw,s[q].P,s[q].C,s[q].N);tt[q*R+r]=(now()-t0)/s[q].calls;}}
  double bu[1000]; memcpy(bu,bt,sizeof(double)*R); qsort(bt,R,8,cmpd); double bound=XOR_BOUND_MACS/bt[R/2], bbest=XOR_BOUND_MACS/bt[0];
  printf("bound %.0f GMAC/s\n",bound/1e9);
  for(int q=0;q<ns;q++){double macs=(double)s[q].M*s[q].N*s[q].K, pr[1000];
   for(int r=0;r<R;r++)pr[r]=100*(macs/tt[q*R+r])/(XOR_BOUND_MACS/bu[r]);
   qsort(pr,R,8,cmpd); printf("  per-round %% of bound, deciles:"); for(int d=0;d<=10;d++)printf(" %.1f",pr[d==10?R-1:d*R/10]);
   qsort(tt+q*R,R,8,cmpd); printf("\n  best/best %.1f%%\n",100*macs/tt[q*R]/bbest);
   printf("%4dx%4dx%5d med %.3f us  %.1f%% of bound (best %.1f%%)\n",s[q].M,s[q].N,s[q].K,tt[q*R+R/2]*1e6,100*macs/tt[q*R+R/2]/bound,100*macs/tt[q*R]/bound);}
  return 0;}
