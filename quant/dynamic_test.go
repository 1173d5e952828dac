package quant

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dynamicMapGolden holds the float32 bits of bitsandbytes'
// create_dynamic_map(signed, max_exponent_bits, total_bits), computed on this
// machine by running that function's body (bitsandbytes/functional.py, copied
// into a scratch script) under Debian's python3-torch 1.13.1 (CPU, AVX2):
//
//	v = create_dynamic_map(signed, meb, total)
//	print(" ".join("%08x" % struct.unpack("<I", struct.pack("<f", float(x)))[0] for x in v))
var dynamicMapGolden = []struct {
	signed   bool
	meb, tot int
	hex      string
}{
	{true, 7, 8, `
		bf7e3333 bf7a9999 bf770000 bf736666 bf6fcccc bf6c3333 bf68999a bf650000 bf616666 bf5dcccc
		bf5a3333 bf569999 bf530000 bf4f6666 bf4bcccc bf483333 bf44999a bf410000 bf3d6667 bf39cccd
		bf363334 bf32999a bf2f0000 bf2b6667 bf27cccd bf243333 bf20999a bf1d0000 bf196666 bf15cccd
		bf123334 bf0e999a bf0b0000 bf076666 bf03cccd bf003333 bef93334 bef20000 beeacccc bee3999a
		bedc6666 bed53332 bece0000 bec6cccc bebf999a beb86666 beb13332 beaa0000 bea2cccc be9b999a
		be946666 be8d3334 be860000 be7d999a be6f3334 be60cccd be526666 be440000 be359999 be273333
		be18cccd be0a6666 bdf80000 bddb3334 bdc9eb85 bdc428f5 bdbe6667 bdb8a3d7 bdb2e148 bdad1eb8
		bda75c28 bda1999a bd9bd70a bd96147b bd9051eb bd8a8f5d bd84cccd bd7e147a bd728f5d bd670a3d
		bd5b851f bd500000 bd447ae1 bd38f5c3 bd2d70a3 bd21eb85 bd166667 bd0ae147 bcfeb852 bce7ae13
		bcd0a3d7 bcb9999a bca28f5c bc8b851f bc68f5c3 bc3ae148 bc1f3b64 bc160418 bc0ccccd bc039581
		bbf4bc6a bbe24dd3 bbcfdf3b bbbd70a4 bbab020d bb989374 bb8624dd bb676c8a bb428f5c bb1db22d
		baf1a9fc baa7ef9d ba7765ff ba59e83e ba3c6a80 ba1eecc1 ba016f01 b9c7e283 b98ce705 b923d70b
		b8ba1f4b b88aefb3 b8378034 b7b24206 b70205ff b65a1a94 b513a3b7 00000000 3513a3b7 365a1a94
		370205ff 37b24206 38378034 388aefb3 38ba1f4b 3923d70b 398ce705 39c7e283 3a016f01 3a1eecc1
		3a3c6a80 3a59e83e 3a7765ff 3aa7ef9d 3af1a9fc 3b1db22d 3b428f5c 3b676c8a 3b8624dd 3b989374
		3bab020d 3bbd70a4 3bcfdf3b 3be24dd3 3bf4bc6a 3c039581 3c0ccccd 3c160418 3c1f3b64 3c3ae148
		3c68f5c3 3c8b851f 3ca28f5c 3cb9999a 3cd0a3d7 3ce7ae13 3cfeb852 3d0ae147 3d166667 3d21eb85
		3d2d70a3 3d38f5c3 3d447ae1 3d500000 3d5b851f 3d670a3d 3d728f5d 3d7e147a 3d84cccd 3d8a8f5d
		3d9051eb 3d96147b 3d9bd70a 3da1999a 3da75c28 3dad1eb8 3db2e148 3db8a3d7 3dbe6667 3dc428f5
		3dc9eb85 3ddb3334 3df80000 3e0a6666 3e18cccd 3e273333 3e359999 3e440000 3e526666 3e60cccd
		3e6f3334 3e7d999a 3e860000 3e8d3334 3e946666 3e9b999a 3ea2cccc 3eaa0000 3eb13332 3eb86666
		3ebf999a 3ec6cccc 3ece0000 3ed53332 3edc6666 3ee3999a 3eeacccc 3ef20000 3ef93334 3f003333
		3f03cccd 3f076666 3f0b0000 3f0e999a 3f123334 3f15cccd 3f196666 3f1d0000 3f20999a 3f243333
		3f27cccd 3f2b6667 3f2f0000 3f32999a 3f363334 3f39cccd 3f3d6667 3f410000 3f44999a 3f483333
		3f4bcccc 3f4f6666 3f530000 3f569999 3f5a3333 3f5dcccc 3f616666 3f650000 3f68999a 3f6c3333
		3f6fcccc 3f736666 3f770000 3f7a9999 3f7e3333 3f800000`},
	{false, 7, 8, `
		00000000 34ae7baa 35500998 360e9b38 3692ccf6 36de4c51 3714e5d5 3783126e 37e171a0 381fe868
		384f1800 387e479a 3896bb99 38ae5364 38c5eb31 3906594b 394154ca 397c5048 399ba5e4 39b923a2
		39d6a162 39f41f22 3a08ce71 3a178d50 3a264c30 3a350b10 3a43c9ef 3a5288d0 3a6147af 3a70068e
		3a7ec56e 3a958106 3aba5e35 3adf3b64 3b020c49 3b147ae1 3b26e978 3b39580f 3b4bc6a7 3b5e353e
		3b70a3d7 3b818937 3b8ac082 3b93f7cf 3b9d2f1a 3ba66666 3baf9db2 3bb8d4fd 3bc20c4a 3bcb4394
		3bd47ae1 3bddb22e 3be6e978 3bf020c5 3bf9580f 3c0147ae 3c05e353 3c0a7ef9 3c0f1aa0 3c13b645
		3c1851eb 3c1ced90 3c218937 3c2f5c2a 3c466667 3c5d70a3 3c747ae2 3c85c28f 3c9147ae 3c9ccccd
		3ca851eb 3cb3d70b 3cbf5c2a 3ccae148 3cd66667 3ce1eb87 3ced70a3 3cf8f5c3 3d023d70 3d080000
		3d0dc28f 3d13851f 3d1947af 3d1f0a3d 3d24cccd 3d2a8f5b 3d3051eb 3d36147b 3d3bd70a 3d41999a
		3d475c2a 3d4d1eb8 3d52e148 3d58a3d7 3d5e6667 3d6428f7 3d69eb87 3d6fae15 3d7570a3 3d7b3333
		3d807ae2 3d835c29 3d863d71 3d891eb9 3d8c0000 3d8ee148 3d91c290 3d94a3d7 3d97851f 3d9a6667
		3d9d47af 3da028f6 3da30a3d 3da5eb85 3da8cccd 3dabae14 3dae8f5c 3db170a3 3db451eb 3db73333
		3dba147b 3dbcf5c3 3dbfd70a 3dc2b852 3dc5999a 3dc87ae1 3dcb5c29 3dd40000 3de26666 3df0cccd
		3dff3333 3e06cccc 3e0e0000 3e153334 3e1c6666 3e23999a 3e2acccc 3e320000 3e393334 3e406666
		3e47999a 3e4ecccc 3e560000 3e5d3334 3e646666 3e6b999a 3e72ccce 3e7a0000 3e80999a 3e843333
		3e87cccd 3e8b6667 3e8f0000 3e92999a 3e963334 3e99cccd 3e9d6667 3ea10000 3ea4999a 3ea83333
		3eabcccc 3eaf6666 3eb30000 3eb69999 3eba3333 3ebdcccc 3ec16666 3ec50000 3ec8999a 3ecc3333
		3ecfcccc 3ed36666 3ed70000 3eda9999 3ede3333 3ee1cccd 3ee56666 3ee90000 3eec999a 3ef03333
		3ef3cccd 3ef76666 3efb0000 3efe9999 3f01199a 3f02e666 3f04b332 3f068000 3f084ccc 3f0a199a
		3f0be666 3f0db334 3f0f8000 3f114ccd 3f13199a 3f14e666 3f16b334 3f188000 3f1a4ccd 3f1c199a
		3f1de666 3f1fb333 3f218000 3f234ccc 3f25199a 3f26e666 3f28b334 3f2a8000 3f2c4cce 3f2e199a
		3f2fe666 3f31b334 3f338000 3f354cce 3f37199a 3f38e666 3f3ab334 3f3c8000 3f3e4ccc 3f40199a
		3f41e666 3f43b334 3f458000 3f474ccc 3f49199a 3f4ae666 3f4cb332 3f4e8000 3f504ccc 3f52199a
		3f53e666 3f55b334 3f578000 3f594ccd 3f5b199a 3f5ce666 3f5eb334 3f608000 3f624ccd 3f64199a
		3f65e666 3f67b333 3f698000 3f6b4ccc 3f6d199a 3f6ee666 3f70b334 3f728000 3f744cce 3f76199a
		3f77e666 3f79b334 3f7b8000 3f7d4cce 3f7f199a 3f800000`},
	{true, 4, 8, `
		bf7e3333 bf7a9999 bf770000 bf736666 bf6fcccc bf6f8af9 bf6c3333 bf68999a bf650000 bf616666
		bf5dcccc bf5a3333 bf569999 bf530000 bf4f6666 bf4ea0ea bf4bcccc bf483333 bf44999a bf410000
		bf3d6667 bf39cccd bf363334 bf32999a bf2f0000 bf2db6dc bf2b6667 bf27cccd bf243333 bf20999a
		bf1d0000 bf196666 bf15cccd bf123334 bf0e999a bf0ccccc bf0b0000 bf076666 bf03cccd bf003333
		bef93334 bef20000 beeacccc bee3999a bedc6666 bed7c57c bed53332 bece0000 bec6cccc bebf999a
		beb86666 beb13332 beaa0000 bea2cccc be9b999a be95f15e be946666 be8d3334 be860000 be7d999a
		be6f3334 be60cccd be526666 be440000 be359999 be283a83 be273333 be18cccd be0a6666 bdf80000
		bddb3334 bdc9eb85 bdc428f5 bdbe6667 bdb8a3d7 bdb2e148 bdad1eb8 bda75c28 bda1999a bd9bd70a
		bd96147b bd9051eb bd8a8f5d bd84cccd bd7e147a bd728f5d bd670a3d bd5b851f bd500000 bd447ae1
		bd38f5c3 bd2d70a3 bd21eb85 bd166667 bd0ae147 bcfeb852 bce7ae13 bcd0a3d7 bcb9999a bca28f5c
		bc8b851f bc68f5c3 bc3ae148 bc1f3b64 bc160418 bc0ccccd bc039581 bbf4bc6a bbe24dd3 bbcfdf3b
		bbbd70a4 bbab020d bb989374 bb8624dd bb676c8a bb428f5c bb1db22d baf1a9fc baa7ef9d ba7765ff
		ba59e83e ba3c6a80 ba1eecc1 ba016f01 b9c7e283 b98ce705 b923d70b 00000000 3923d70b 398ce705
		39c7e283 3a016f01 3a1eecc1 3a3c6a80 3a59e83e 3a7765ff 3aa7ef9d 3af1a9fc 3b1db22d 3b428f5c
		3b676c8a 3b8624dd 3b989374 3bab020d 3bbd70a4 3bcfdf3b 3be24dd3 3bf4bc6a 3c039581 3c0ccccd
		3c160418 3c1f3b64 3c3ae148 3c68f5c3 3c8b851f 3ca28f5c 3cb9999a 3cd0a3d7 3ce7ae13 3cfeb852
		3d0ae147 3d166667 3d21eb85 3d2d70a3 3d38f5c3 3d447ae1 3d500000 3d5b851f 3d670a3d 3d728f5d
		3d7e147a 3d84cccd 3d8a8f5d 3d9051eb 3d96147b 3d9bd70a 3da1999a 3da75c28 3dad1eb8 3db2e148
		3db8a3d7 3dbe6667 3dc428f5 3dc9eb85 3ddb3334 3df80000 3e0a6666 3e18cccd 3e273333 3e283a83
		3e359999 3e440000 3e526666 3e60cccd 3e6f3334 3e7d999a 3e860000 3e8d3334 3e946666 3e95f15e
		3e9b999a 3ea2cccc 3eaa0000 3eb13332 3eb86666 3ebf999a 3ec6cccc 3ece0000 3ed53332 3ed7c57c
		3edc6666 3ee3999a 3eeacccc 3ef20000 3ef93334 3f003333 3f03cccd 3f076666 3f0b0000 3f0ccccc
		3f0e999a 3f123334 3f15cccd 3f196666 3f1d0000 3f20999a 3f243333 3f27cccd 3f2b6667 3f2db6dc
		3f2f0000 3f32999a 3f363334 3f39cccd 3f3d6667 3f410000 3f44999a 3f483333 3f4bcccc 3f4ea0ea
		3f4f6666 3f530000 3f569999 3f5a3333 3f5dcccc 3f616666 3f650000 3f68999a 3f6c3333 3f6f8af9
		3f6fcccc 3f736666 3f770000 3f7a9999 3f7e3333 3f800000`},
	{true, 3, 4, `
		bf633333 bf29999a bee00000 be599999 bd9eb852 bd051eb9 bbb43958 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000
		00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 3bb43958 3d051eb9
		3d9eb852 3e599999 3ee00000 3f29999a 3f633333 3f800000`},
	{true, 1, 8, `
		bf7e3333 bf7e2be2 bf7a9999 bf7a83a8 bf770000 bf76db6e bf736666 bf733333 bf6fcccc bf6f8af8
		bf6c3333 bf6be2be bf68999a bf683a84 bf650000 bf649249 bf616666 bf60ea0e bf5dcccc bf5d41d4
		bf5a3333 bf59999a bf569999 bf55f15f bf530000 bf524924 bf4f6666 bf4ea0ea bf4bcccc bf4af8b0
		bf483333 bf475075 bf44999a bf43a83a bf410000 bf400000 bf3d6667 bf3c57c6 bf39cccd bf38af8b
		bf363334 bf350750 bf32999a bf315f16 bf2f0000 bf2db6dc bf2b6667 bf2a0ea1 bf27cccd bf266666
		bf243333 bf22be2c bf20999a bf1f15f2 bf1d0000 bf1b6db7 bf196666 bf17c57c bf15cccd bf141d42
		bf123334 bf107508 bf0e999a bf0ccccd bf0b0000 bf092492 bf076666 bf057c58 bf03cccd bf01d41e
		bf003333 befc57c6 bef93334 bef50750 bef20000 beedb6dc beeacccc bee66666 bee3999a bedf15f2
		bedc6666 bed7c57c bed53332 bed07508 bece0000 bec92492 bec6cccc bec1d41e bebf999a beba83a8
		beb86666 beb33334 beb13332 beabe2be beaa0000 bea4924a bea2cccc be9d41d4 be9b999a be95f160
		be946666 be8ea0ea be8d3334 be875076 be860000 be800000 be7d999a be715f16 be6f3334 be62be2c
		be60cccd be541d42 be526666 be457c58 be440000 be36db6e be359999 be283a84 be273333 be19999a
		be18cccd be0af8b0 be0a6666 bdf8af8c bdf80000 bddb6db7 bddb3334 00000000 3ddb3334 3ddb6db7
		3df80000 3df8af8c 3e0a6666 3e0af8b0 3e18cccd 3e19999a 3e273333 3e283a84 3e359999 3e36db6e
		3e440000 3e457c58 3e526666 3e541d42 3e60cccd 3e62be2c 3e6f3334 3e715f16 3e7d999a 3e800000
		3e860000 3e875076 3e8d3334 3e8ea0ea 3e946666 3e95f160 3e9b999a 3e9d41d4 3ea2cccc 3ea4924a
		3eaa0000 3eabe2be 3eb13332 3eb33334 3eb86666 3eba83a8 3ebf999a 3ec1d41e 3ec6cccc 3ec92492
		3ece0000 3ed07508 3ed53332 3ed7c57c 3edc6666 3edf15f2 3ee3999a 3ee66666 3eeacccc 3eedb6dc
		3ef20000 3ef50750 3ef93334 3efc57c6 3f003333 3f01d41e 3f03cccd 3f057c58 3f076666 3f092492
		3f0b0000 3f0ccccd 3f0e999a 3f107508 3f123334 3f141d42 3f15cccd 3f17c57c 3f196666 3f1b6db7
		3f1d0000 3f1f15f2 3f20999a 3f22be2c 3f243333 3f266666 3f27cccd 3f2a0ea1 3f2b6667 3f2db6dc
		3f2f0000 3f315f16 3f32999a 3f350750 3f363334 3f38af8b 3f39cccd 3f3c57c6 3f3d6667 3f400000
		3f410000 3f43a83a 3f44999a 3f475075 3f483333 3f4af8b0 3f4bcccc 3f4ea0ea 3f4f6666 3f524924
		3f530000 3f55f15f 3f569999 3f59999a 3f5a3333 3f5d41d4 3f5dcccc 3f60ea0e 3f616666 3f649249
		3f650000 3f683a84 3f68999a 3f6be2be 3f6c3333 3f6f8af8 3f6fcccc 3f733333 3f736666 3f76db6e
		3f770000 3f7a83a8 3f7a9999 3f7e2be2 3f7e3333 3f800000`},
	{true, 8, 8, `
		bf7e3333 bf7a9999 bf770000 bf736666 bf6fcccc bf6c3333 bf68999a bf650000 bf616666 bf5dcccc
		bf5a3333 bf569999 bf530000 bf4f6666 bf4bcccc bf483333 bf44999a bf410000 bf3d6667 bf39cccd
		bf363334 bf32999a bf2f0000 bf2b6667 bf27cccd bf243333 bf20999a bf1d0000 bf196666 bf15cccd
		bf123334 bf0e999a bf0b0000 bf076666 bf03cccd bf003333 bef93334 bef20000 beeacccc bee3999a
		bedc6666 bed53332 bece0000 bec6cccc bebf999a beb86666 beb13332 beaa0000 bea2cccc be9b999a
		be946666 be8d3334 be860000 be7d999a be6f3334 be60cccd be526666 be440000 be359999 be273333
		be18cccd be0a6666 bdf80000 bddb3334 bdc9eb85 bdc428f5 bdbe6667 bdb8a3d7 bdb2e148 bdad1eb8
		bda75c28 bda1999a bd9bd70a bd96147b bd9051eb bd8a8f5d bd84cccd bd7e147a bd728f5d bd670a3d
		bd5b851f bd500000 bd447ae1 bd38f5c3 bd2d70a3 bd21eb85 bd166667 bd0ae147 bcfeb852 bce7ae13
		bcd0a3d7 bcb9999a bca28f5c bc8b851f bc68f5c3 bc3ae148 bc1f3b64 bc160418 bc0ccccd bc039581
		bbf4bc6a bbe24dd3 bbcfdf3b bbbd70a4 bbab020d bb989374 bb8624dd bb676c8a bb428f5c bb1db22d
		baf1a9fc baa7ef9d ba7765ff ba59e83e ba3c6a80 ba1eecc1 ba016f01 b9c7e283 b98ce705 b923d70b
		b8ba1f4b b88aefb3 b8378034 b7b24206 b70205ff b65a1a94 b513a3b7 00000000 3513a3b7 365a1a94
		370205ff 37b24206 38378034 388aefb3 38ba1f4b 3923d70b 398ce705 39c7e283 3a016f01 3a1eecc1
		3a3c6a80 3a59e83e 3a7765ff 3aa7ef9d 3af1a9fc 3b1db22d 3b428f5c 3b676c8a 3b8624dd 3b989374
		3bab020d 3bbd70a4 3bcfdf3b 3be24dd3 3bf4bc6a 3c039581 3c0ccccd 3c160418 3c1f3b64 3c3ae148
		3c68f5c3 3c8b851f 3ca28f5c 3cb9999a 3cd0a3d7 3ce7ae13 3cfeb852 3d0ae147 3d166667 3d21eb85
		3d2d70a3 3d38f5c3 3d447ae1 3d500000 3d5b851f 3d670a3d 3d728f5d 3d7e147a 3d84cccd 3d8a8f5d
		3d9051eb 3d96147b 3d9bd70a 3da1999a 3da75c28 3dad1eb8 3db2e148 3db8a3d7 3dbe6667 3dc428f5
		3dc9eb85 3ddb3334 3df80000 3e0a6666 3e18cccd 3e273333 3e359999 3e440000 3e526666 3e60cccd
		3e6f3334 3e7d999a 3e860000 3e8d3334 3e946666 3e9b999a 3ea2cccc 3eaa0000 3eb13332 3eb86666
		3ebf999a 3ec6cccc 3ece0000 3ed53332 3edc6666 3ee3999a 3eeacccc 3ef20000 3ef93334 3f003333
		3f03cccd 3f076666 3f0b0000 3f0e999a 3f123334 3f15cccd 3f196666 3f1d0000 3f20999a 3f243333
		3f27cccd 3f2b6667 3f2f0000 3f32999a 3f363334 3f39cccd 3f3d6667 3f410000 3f44999a 3f483333
		3f4bcccc 3f4f6666 3f530000 3f569999 3f5a3333 3f5dcccc 3f616666 3f650000 3f68999a 3f6c3333
		3f6fcccc 3f736666 3f770000 3f7a9999 3f7e3333 3f800000`},
}

func TestDynamicMapMatchesBitsandbytes(t *testing.T) {
	for _, g := range dynamicMapGolden {
		got := DynamicMap(g.signed, g.meb, g.tot)
		words := strings.Fields(g.hex)
		require.Len(t, got, len(words))
		for i, w := range words {
			bits, err := strconv.ParseUint(w, 16, 32)
			require.NoError(t, err)
			require.Equalf(t, math.Float32frombits(uint32(bits)), got[i],
				"DynamicMap(%v, %d, %d)[%d]", g.signed, g.meb, g.tot, i)
		}
	}
}

func TestDynamicMapShape(t *testing.T) {
	m := DynamicMap(true, 7, 8)
	require.Equal(t, float32(1), m[255])
	require.Equal(t, float32(0), m[127], "the signed map has a single 0, below the 128 positive values")
	// The most negative value is −(midpoint of the last two linspace points),
	// not −1: bitsandbytes' CPU kernel patches code[0] to −1 for that reason.
	require.InDelta(t, -0.99297, m[0], 1e-5)
	for i := 1; i < len(m); i++ {
		require.Less(t, m[i-1], m[i], "entries %d and %d", i-1, i)
	}
}

func TestDynamicMapPanicsOnImpossibleParameters(t *testing.T) {
	for _, p := range [][2]int{{0, 8}, {7, 0}, {7, 9}} {
		require.Panics(t, func() { DynamicMap(true, p[0], p[1]) }, "%v", p)
	}
	// Unsigned maps only add up to 2^totalBits values when every non-sign bit
	// is an exponent bit; bitsandbytes' assert fails for the others.
	require.Panics(t, func() { DynamicMap(false, 6, 8) })
}

func TestTorchLinspace32(t *testing.T) {
	// torch.linspace(0.1, 1, 17) under PyTorch 1.13.1 (see dynamicMapGolden).
	// Indices 3 and 6 come from the 8-lane vector fill (base + j·step, rounded
	// twice): a per-element fused start+i·step is one ulp higher there.
	want := []uint32{0x3dcccccd, 0x3e200000, 0x3e59999a, 0x3e899999, 0x3ea66666, 0x3ec33333,
		0x3edfffff, 0x3efccccc, 0x3f0ccccd, 0x3f1b3333, 0x3f29999a, 0x3f380000, 0x3f466666,
		0x3f54cccd, 0x3f633333, 0x3f71999a, 0x3f800000}
	got := torchLinspace32(0.1, 1, 17)
	for i, w := range want {
		require.Equalf(t, math.Float32frombits(w), got[i], "index %d", i)
	}
	require.Equal(t, []float32{0.1}, torchLinspace32(0.1, 1, 1))
}

func TestQuantizeBlockwiseNearestAndTies(t *testing.T) {
	codebook := []float32{-1, -0.5, 0, 0.25, 1}
	x := []float32{
		1,     // absmax of the block: normalizes to 1
		-1,    // exact code
		-0.75, // exact midpoint of −1 and −0.5: the lower index wins
		0.125, // exact midpoint of 0 and 0.25: the lower index wins
		0.126, // just above it
		-0.3,  // 0.2 from −0.5, 0.3 from 0
		0.9,   // nearer 1
		0.6,   // 0.35 from 0.25, 0.4 from 1
	}
	codes := make([]uint8, len(x))
	absmax, err := QuantizeBlockwise(codes, x, codebook, 32)
	require.NoError(t, err)
	require.Equal(t, []float32{1}, absmax)
	require.Equal(t, []uint8{4, 0, 0, 2, 3, 1, 4, 3}, codes)

	dst := make([]float32, len(x))
	require.NoError(t, DequantizeBlockwise(dst, codes, absmax, codebook, 32))
	require.Equal(t, []float32{1, -1, -1, 0, 0.25, -0.5, 1, 0.25}, dst)
}

func TestQuantizeBlockwiseDuplicatesGiveLowestIndex(t *testing.T) {
	codebook := DynamicMap(true, 3, 4) // 16 values padded with 240 zeros
	codes := make([]uint8, 2)
	_, err := QuantizeBlockwise(codes, []float32{1, 0}, codebook, 32)
	require.NoError(t, err)
	first := 0
	for codebook[first] != 0 {
		first++
	}
	require.Equal(t, uint8(first), codes[1])
}

func TestQuantizeBlockwiseRoundTripDynamic(t *testing.T) {
	// Values spread over the range like absmax−mean in double quantization.
	const n = 1000
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.7)) * float32(1+i%5) * 1e-3
	}
	x[600] = 0 // leave one block not all-zero but with a zero
	for i := 512; i < 768; i++ {
		x[i] = 0 // an all-zero block
	}
	codebook := DynamicMap(true, 7, 8)
	codes := make([]uint8, n)
	absmax, err := QuantizeBlockwise(codes, x, codebook, 256)
	require.NoError(t, err)
	require.Len(t, absmax, 4)
	require.Equal(t, float32(0), absmax[2])
	dst := make([]float32, n)
	require.NoError(t, DequantizeBlockwise(dst, codes, absmax, codebook, 256))
	for i := range x {
		b := i / 256
		// The dynamic map's spacing near ±1 is 0.9/64 ≈ 0.014 of absmax, so
		// the nearest value is within half of it; the −1 end is −0.993.
		require.InDeltaf(t, x[i], dst[i], float64(absmax[b])*0.0071+1e-12, "element %d", i)
		// The nearest code really is nearest.
		if absmax[b] != 0 {
			v := x[i] / absmax[b]
			best := abs32(v - codebook[codes[i]])
			for _, c := range codebook {
				require.GreaterOrEqual(t, abs32(v-c), best)
			}
		}
	}
	for i := 512; i < 768; i++ {
		require.Equal(t, float32(0), dst[i])
	}
}

func TestQuantizeBlockwiseErrors(t *testing.T) {
	cb := DynamicMap(true, 7, 8)
	_, err := QuantizeBlockwise(make([]uint8, 4), make([]float32, 4), cb, 100)
	require.ErrorIs(t, err, ErrBlockSize)
	_, err = QuantizeBlockwise(make([]uint8, 3), make([]float32, 4), cb, 64)
	require.ErrorContains(t, err, "3 codes for 4 values")
	_, err = QuantizeBlockwise(make([]uint8, 4), make([]float32, 4), []float32{1, 0}, 64)
	require.ErrorContains(t, err, "not sorted")
	_, err = QuantizeBlockwise(make([]uint8, 4), make([]float32, 4), nil, 64)
	require.ErrorContains(t, err, "0 values")
	x := make([]float32, 300)
	x[290] = float32(math.NaN())
	_, err = QuantizeBlockwise(make([]uint8, 300), x, cb, 256)
	require.ErrorIs(t, err, ErrNonFinite)
	require.ErrorContains(t, err, "block 1")

	err = DequantizeBlockwise(make([]float32, 4), []uint8{0, 1, 2, 3}, []float32{1}, []float32{0, 1}, 64)
	require.ErrorContains(t, err, "code 2 at index 2")
	err = DequantizeBlockwise(make([]float32, 4), make([]uint8, 4), []float32{1, 1}, cb, 64)
	require.ErrorContains(t, err, "2 absmax values")
	err = DequantizeBlockwise(make([]float32, 3), make([]uint8, 4), []float32{1}, cb, 64)
	require.ErrorContains(t, err, "3 elements for 4 codes")
	require.True(t, errors.Is(DequantizeBlockwise(nil, nil, nil, cb, 3), ErrBlockSize))
}

func ExampleDynamicMap() {
	m := DynamicMap(true, 7, 8)
	fmt.Println(len(m), m[0], m[126], m[127], m[128], m[255])
	// Output: 256 -0.99296874 -5.5000004e-07 0 5.5000004e-07 1
}
