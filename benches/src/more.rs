//! Layers of real networks beyond `shared/shapes.tsv` (`benches/more-shapes.tsv`): stride-2
//! 3x3 and 5x5 depthwise, 7x7 depthwise (ConvNeXt), dilated depthwise (DeepLabV3), 7x7 planes,
//! odd channel and group counts (ShuffleNet, RegNet), grouped 1x1, pointwise expansions on large
//! planes, batch 4, the MobileNetV1 separable blocks at 112, 14 and 7, and dense layers of the
//! same networks' stems and of ResNet (3x3, 7x7, and the 1x1 stride-2 shortcut). The kernels are judged
//! on shapes no file lists; these rows are how we look at some of them (`cargo build --release -p
//! conv-peer-ffi --features more-rows`, then `with_ours.py --shapes-tsv benches/more-shapes.tsv`).
//! Compiled only with the feature `more-rows`.

use conv_runtime::conv_kernel;

use crate::{Chain, Row, Shape};

/// `mnv2_dw144_56_s2`: MobileNetV2 block 4 depthwise, stride 2.
#[conv_kernel(in = 144, out = 144, k = 3, groups = 144, stride = 2, pad = 1)]
pub struct Mnv2Dw144_56S2;

/// `mnv2_dw192_28`: MobileNetV2 stage 3 depthwise.
#[conv_kernel(in = 192, out = 192, k = 3, groups = 192, pad = 1)]
pub struct Mnv2Dw192_28;

/// `mnv2_dw576_14_s2`: MobileNetV2 block 14 depthwise, stride 2.
#[conv_kernel(in = 576, out = 576, k = 3, groups = 576, stride = 2, pad = 1)]
pub struct Mnv2Dw576_14S2;

/// `mnv2_dw960_7`: MobileNetV2 stage 6 depthwise.
#[conv_kernel(in = 960, out = 960, k = 3, groups = 960, pad = 1)]
pub struct Mnv2Dw960_7;

/// `mnv2_dw144_56_n4`: MobileNetV2 block 3 depthwise, batch 4.
#[conv_kernel(in = 144, out = 144, k = 3, groups = 144, pad = 1)]
pub struct Mnv2Dw144_56N4;

/// `effb0_dw144_56_k5_s2`: EfficientNet-B0 stage 3 5x5 depthwise, stride 2.
#[conv_kernel(in = 144, out = 144, k = 5, groups = 144, stride = 2, pad = 2)]
pub struct Effb0Dw144_56K5S2;

/// `effb0_dw672_14_k5_s2`: EfficientNet-B0 stage 6 5x5 depthwise, stride 2.
#[conv_kernel(in = 672, out = 672, k = 5, groups = 672, stride = 2, pad = 2)]
pub struct Effb0Dw672_14K5S2;

/// `effb0_dw1152_7_k5`: EfficientNet-B0 stage 6 5x5 depthwise.
#[conv_kernel(in = 1152, out = 1152, k = 5, groups = 1152, pad = 2)]
pub struct Effb0Dw1152_7K5;

/// `convnext_dw96_56_k7`: ConvNeXt-T stage 1 7x7 depthwise.
#[conv_kernel(in = 96, out = 96, k = 7, groups = 96, pad = 3)]
pub struct ConvnextDw96_56K7;

/// `convnext_dw384_14_k7`: ConvNeXt-T stage 3 7x7 depthwise.
#[conv_kernel(in = 384, out = 384, k = 7, groups = 384, pad = 3)]
pub struct ConvnextDw384_14K7;

/// `shufv2_dw58_28`: ShuffleNetV2 1.0x stage 2 branch depthwise.
#[conv_kernel(in = 58, out = 58, k = 3, groups = 58, pad = 1)]
pub struct Shufv2Dw58_28;

/// `shufv2_dw116_28_s2`: ShuffleNetV2 1.0x stage 3 downsampling depthwise.
#[conv_kernel(in = 116, out = 116, k = 3, groups = 116, stride = 2, pad = 1)]
pub struct Shufv2Dw116_28S2;

/// `dlv3_dw960_33_d2`: DeepLabV3 MobileNetV2 (output stride 16) dilated depthwise.
#[conv_kernel(in = 960, out = 960, k = 3, groups = 960, pad = 2, dilation = 2)]
pub struct Dlv3Dw960_33D2;

/// `mnv2_pw16_96_112`: MobileNetV2 block 2 expansion.
#[conv_kernel(in = 16, out = 96, k = 1)]
pub struct Mnv2Pw16_96_112;

/// `mnv2_pw96_24_56`: MobileNetV2 block 2 projection.
#[conv_kernel(in = 96, out = 24, k = 1)]
pub struct Mnv2Pw96_24_56;

/// `mnv2_pw32_192_28`: MobileNetV2 stage 3 expansion.
#[conv_kernel(in = 32, out = 192, k = 1)]
pub struct Mnv2Pw32_192_28;

/// `mnv2_pw960_320_7`: MobileNetV2 last block projection.
#[conv_kernel(in = 960, out = 320, k = 1)]
pub struct Mnv2Pw960_320_7;

/// `mnv2_pw320_1280_7`: MobileNetV2 head 1x1.
#[conv_kernel(in = 320, out = 1280, k = 1)]
pub struct Mnv2Pw320_1280_7;

/// `shufv2_pw58_58_28`: ShuffleNetV2 1.0x stage 2 branch 1x1.
#[conv_kernel(in = 58, out = 58, k = 1)]
pub struct Shufv2Pw58_58_28;

/// `mnv2_pw384_64_14_n4`: MobileNetV2 stage 4 projection, batch 4.
#[conv_kernel(in = 384, out = 64, k = 1)]
pub struct Mnv2Pw384_64_14N4;

/// `resnext_g32_256_56_s2`: ResNeXt-50 32x4d conv3 stage first block, stride 2.
#[conv_kernel(in = 256, out = 256, k = 3, groups = 32, stride = 2, pad = 1)]
pub struct ResnextG32_256_56S2;

/// `resnext_g32_1024_7`: ResNeXt-50 32x4d conv5 stage.
#[conv_kernel(in = 1024, out = 1024, k = 3, groups = 32, pad = 1)]
pub struct ResnextG32_1024_7;

/// `mnv2_stem_3_32_224_s2`: MobileNetV2 stem, dense 3x3 stride 2 on the RGB image.
#[conv_kernel(in = 3, out = 32, k = 3, stride = 2, pad = 1)]
pub struct Mnv2Stem3_32_224S2;

/// `resnet_3x3_64_56`: ResNet-18/50 conv2 stage, dense 3x3.
#[conv_kernel(in = 64, out = 64, k = 3, pad = 1)]
pub struct Resnet3x3_64_56;

/// `resnet_ds_256_512_56_s2`: ResNet-50 conv3 shortcut, 1x1 stride 2.
#[conv_kernel(in = 256, out = 512, k = 1, stride = 2)]
pub struct ResnetDs256_512_56S2;

/// `resnet_stem_3_64_224_k7_s2`: ResNet stem, dense 7x7 stride 2 on the RGB image.
#[conv_kernel(in = 3, out = 64, k = 7, stride = 2, pad = 3)]
pub struct ResnetStem3_64_224K7S2;

/// `resnet_3x3_64_128_56_s2`: ResNet-18 conv3_1, dense 3x3 stride 2.
#[conv_kernel(in = 64, out = 128, k = 3, stride = 2, pad = 1)]
pub struct Resnet3x3_64_128_56S2;

/// `regnety_g13_104_28`: RegNetY-400MF stage 2 (group width 8).
#[conv_kernel(in = 104, out = 104, k = 3, groups = 13, pad = 1)]
pub struct RegnetyG13_104_28;

/// `regnety_g26_208_14`: RegNetY-400MF stage 3 (group width 8).
#[conv_kernel(in = 208, out = 208, k = 3, groups = 26, pad = 1)]
pub struct RegnetyG26_208_14;

/// `shufv1_g3_pw240_60_28`: ShuffleNetV1 (g=3) stage 2 grouped 1x1.
#[conv_kernel(in = 240, out = 60, k = 1, groups = 3)]
pub struct Shufv1G3Pw240_60_28;

/// `sep_mnv1_64_128_112_s2`: MobileNetV1 block 2: depthwise 3x3 stride 2 then pointwise 64->128.
#[conv_kernel(in = 64, out = 128, k = 3, stride = 2, pad = 1, separable)]
pub struct SepMnv1_64_128_112S2;

/// `sep_mnv1_64_128_112_s2`'s depthwise stage alone.
#[conv_kernel(in = 64, out = 64, k = 3, groups = 64, stride = 2, pad = 1)]
pub struct SepMnv1_64_128_112S2Dw;

/// `sep_mnv1_64_128_112_s2`'s pointwise stage alone.
#[conv_kernel(in = 64, out = 128, k = 1)]
pub struct SepMnv1_64_128_112S2Pw;

/// `sep_mnv1_512_512_14`: MobileNetV1 blocks 7-11: depthwise 3x3 then pointwise 512->512.
#[conv_kernel(in = 512, out = 512, k = 3, pad = 1, separable)]
pub struct SepMnv1_512_512_14;

/// `sep_mnv1_512_512_14`'s depthwise stage alone.
#[conv_kernel(in = 512, out = 512, k = 3, groups = 512, pad = 1)]
pub struct SepMnv1_512_512_14Dw;

/// `sep_mnv1_512_512_14`'s pointwise stage alone.
#[conv_kernel(in = 512, out = 512, k = 1)]
pub struct SepMnv1_512_512_14Pw;

/// `sep_mnv1_1024_1024_7`: MobileNetV1 block 13: depthwise 3x3 then pointwise 1024->1024.
#[conv_kernel(in = 1024, out = 1024, k = 3, pad = 1, separable)]
pub struct SepMnv1_1024_1024_7;

/// `sep_mnv1_1024_1024_7`'s depthwise stage alone.
#[conv_kernel(in = 1024, out = 1024, k = 3, groups = 1024, pad = 1)]
pub struct SepMnv1_1024_1024_7Dw;

/// `sep_mnv1_1024_1024_7`'s pointwise stage alone.
#[conv_kernel(in = 1024, out = 1024, k = 1)]
pub struct SepMnv1_1024_1024_7Pw;

/// Every row of `benches/more-shapes.tsv`, in its order.
pub static MORE_ROWS: &[Row] = &[
    row!("mnv2_dw144_56_s2", "depthwise", Mnv2Dw144_56S2, n = 1, hw = 56 x 56),
    row!("mnv2_dw192_28", "depthwise", Mnv2Dw192_28, n = 1, hw = 28 x 28),
    row!("mnv2_dw576_14_s2", "depthwise", Mnv2Dw576_14S2, n = 1, hw = 14 x 14),
    row!("mnv2_dw960_7", "depthwise", Mnv2Dw960_7, n = 1, hw = 7 x 7),
    row!("mnv2_dw144_56_n4", "depthwise", Mnv2Dw144_56N4, n = 4, hw = 56 x 56),
    row!("effb0_dw144_56_k5_s2", "depthwise", Effb0Dw144_56K5S2, n = 1, hw = 56 x 56),
    row!("effb0_dw672_14_k5_s2", "depthwise", Effb0Dw672_14K5S2, n = 1, hw = 14 x 14),
    row!("effb0_dw1152_7_k5", "depthwise", Effb0Dw1152_7K5, n = 1, hw = 7 x 7),
    row!("convnext_dw96_56_k7", "depthwise", ConvnextDw96_56K7, n = 1, hw = 56 x 56),
    row!("convnext_dw384_14_k7", "depthwise", ConvnextDw384_14K7, n = 1, hw = 14 x 14),
    row!("shufv2_dw58_28", "depthwise", Shufv2Dw58_28, n = 1, hw = 28 x 28),
    row!("shufv2_dw116_28_s2", "depthwise", Shufv2Dw116_28S2, n = 1, hw = 28 x 28),
    row!("dlv3_dw960_33_d2", "depthwise", Dlv3Dw960_33D2, n = 1, hw = 33 x 33),
    row!("mnv2_pw16_96_112", "pointwise", Mnv2Pw16_96_112, n = 1, hw = 112 x 112),
    row!("mnv2_pw96_24_56", "pointwise", Mnv2Pw96_24_56, n = 1, hw = 56 x 56),
    row!("mnv2_pw32_192_28", "pointwise", Mnv2Pw32_192_28, n = 1, hw = 28 x 28),
    row!("mnv2_pw960_320_7", "pointwise", Mnv2Pw960_320_7, n = 1, hw = 7 x 7),
    row!("mnv2_pw320_1280_7", "pointwise", Mnv2Pw320_1280_7, n = 1, hw = 7 x 7),
    row!("shufv2_pw58_58_28", "pointwise", Shufv2Pw58_58_28, n = 1, hw = 28 x 28),
    row!("mnv2_pw384_64_14_n4", "pointwise", Mnv2Pw384_64_14N4, n = 4, hw = 14 x 14),
    row!("resnext_g32_256_56_s2", "grouped", ResnextG32_256_56S2, n = 1, hw = 56 x 56),
    row!("resnext_g32_1024_7", "grouped", ResnextG32_1024_7, n = 1, hw = 7 x 7),
    row!("mnv2_stem_3_32_224_s2", "grouped", Mnv2Stem3_32_224S2, n = 1, hw = 224 x 224),
    row!("resnet_3x3_64_56", "grouped", Resnet3x3_64_56, n = 1, hw = 56 x 56),
    row!("resnet_ds_256_512_56_s2", "pointwise", ResnetDs256_512_56S2, n = 1, hw = 56 x 56),
    row!("resnet_stem_3_64_224_k7_s2", "grouped", ResnetStem3_64_224K7S2, n = 1, hw = 224 x 224),
    row!("resnet_3x3_64_128_56_s2", "grouped", Resnet3x3_64_128_56S2, n = 1, hw = 56 x 56),
    row!("regnety_g13_104_28", "grouped", RegnetyG13_104_28, n = 1, hw = 28 x 28),
    row!("regnety_g26_208_14", "grouped", RegnetyG26_208_14, n = 1, hw = 14 x 14),
    row!("shufv1_g3_pw240_60_28", "grouped", Shufv1G3Pw240_60_28, n = 1, hw = 28 x 28),
    row!(
        "sep_mnv1_64_128_112_s2",
        separable,
        SepMnv1_64_128_112S2,
        SepMnv1_64_128_112S2Dw,
        SepMnv1_64_128_112S2Pw,
        n = 1,
        hw = 112 x 112
    ),
    row!(
        "sep_mnv1_512_512_14",
        separable,
        SepMnv1_512_512_14,
        SepMnv1_512_512_14Dw,
        SepMnv1_512_512_14Pw,
        n = 1,
        hw = 14 x 14
    ),
    row!(
        "sep_mnv1_1024_1024_7",
        separable,
        SepMnv1_1024_1024_7,
        SepMnv1_1024_1024_7Dw,
        SepMnv1_1024_1024_7Pw,
        n = 1,
        hw = 7 x 7
    ),
];
