# Independent Monte Carlo check of the blockwise 4-bit formats on Gaussian
# weights, in plain Python (no numpy, no golora code): blocks of 64 values from
# N(0, 0.02²), each scaled by its absmax and sent to the nearest code by
# brute-force argmin over the code list, then the mean squared error.
#
# Run: python3 quant/testdata/gaussian_mse.py   (about 20 s)
# Output on the machine where golora's figures were checked (CPython 3):
#   fp4 5.9667260399826515e-06 18.263238934964672
#   int4 4.041815267237859e-06 19.954835312957904
#   nf4 3.38710310403261e-06 20.722315744793462
import math
import random

random.seed(2024)
fp4 = [v / 12 for v in [0, 0.0625, 8, 12, 4, 6, 2, 3, -0.0, -0.0625, -8, -12, -4, -6, -2, -3]]
int4 = [-1 + 2 * k / 15 for k in range(16)]
nf4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
       -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
       0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
       0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]
acc = {'fp4': 0.0, 'int4': 0.0, 'nf4': 0.0}
n = 0
for _ in range(20000):
    x = [random.gauss(0, 0.02) for _ in range(64)]
    a = max(abs(v) for v in x)
    for v in x:
        s = v / a
        for name, cb in (('fp4', fp4), ('int4', int4), ('nf4', nf4)):
            q = min(cb, key=lambda c: abs(s - c))
            acc[name] += (v - q * a) ** 2
        n += 1
for k in acc:
    print(k, acc[k] / n, 10 * math.log10(0.02 ** 2 / (acc[k] / n)))
