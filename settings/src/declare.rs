//! [`settings!`](crate::settings): a program's settings, declared once.

/// Declares a program's settings once, and from that declaration generates:
///
/// - the flags struct (`$args`, whose derives and `#[command]` the caller gives, and whose own fields come
///   first): for each setting an `Option` flag `--<key-with-dashes>`, its help the setting's doc with
///   `[env: ...]` added, its value read with [`Value::parse`](crate::Value::parse);
/// - the settings struct (`$settings`): each setting a [`Sourced`](crate::Sourced) value when it has a
///   default, an `Option` of one when it has none; `KEYS`, the file keys; and `resolve`, which takes each
///   setting from the flag, else the environment, else the file, else the default.
///
/// A setting is written `/// doc` then `key: Type [= default], env "VAR" [| "OTHER_VAR"] [, arg(clap
/// attributes)];`.
#[macro_export]
macro_rules! settings {
    (
        $(#[$args_meta:meta])*
        $args_vis:vis struct $args:ident { $($extra:tt)* }

        $(#[$settings_meta:meta])*
        $vis:vis struct $settings:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty $(= $default:expr)?, env $env:literal $(| $alias:literal)* $(, arg($($arg:tt)*))? ;
            )*
        }
    ) => {
        $(#[$args_meta])*
        $args_vis struct $args {
            $($extra)*
            $(
                $(#[doc = $doc])*
                #[arg(
                    long,
                    help = $crate::flag_help(&[$($doc),*], &[$env $(, $alias)*]),
                    value_parser = $crate::flag_value::<$ty>
                    $(, $($arg)*)?
                )]
                pub $field: Option<$ty>,
            )*
        }

        $(#[$settings_meta])*
        $vis struct $settings {
            $(
                $(#[doc = $doc])*
                pub $field: $crate::__setting_type!($ty $(, $default)?),
            )*
        }

        impl $settings {
            /// Every setting's file key.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Every setting, from its flag in `args`, else the environment, else the file of `layers`, else
            /// its default.
            pub fn resolve(args: &$args, layers: &$crate::Layers<'_>) -> Result<Self, $crate::ConfigError> {
                Ok($settings {
                    $(
                        $field: {
                            const SETTING: $crate::Setting =
                                $crate::Setting { key: stringify!($field), env: &[$env $(, $alias)*] };
                            $crate::__pick_setting!(layers, SETTING, args.$field.clone() $(, $default)?)
                        },
                    )*
                })
            }
        }
    };
}

/// The type of a resolved setting: `Sourced<T>` with a default, `Option<Sourced<T>>` without.
#[doc(hidden)]
#[macro_export]
macro_rules! __setting_type {
    ($ty:ty) => { Option<$crate::Sourced<$ty>> };
    ($ty:ty, $default:expr) => { $crate::Sourced<$ty> };
}

/// Resolves one setting, falling back on its default when it has one.
#[doc(hidden)]
#[macro_export]
macro_rules! __pick_setting {
    ($layers:ident, $setting:ident, $flag:expr) => {
        $layers.pick($setting, $flag)?
    };
    ($layers:ident, $setting:ident, $flag:expr, $default:expr) => {
        match $layers.pick($setting, $flag)? {
            Some(value) => value,
            None => $crate::Sourced::default_of($setting, $default),
        }
    };
}
