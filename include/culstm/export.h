/* culstm/export.h: CULSTM_API marks what the shared library exports. The library is compiled with
 * -fvisibility=hidden (and a linker version script), so everything without this mark stays internal.
 * Usable from C and C++. */
#ifndef CULSTM_EXPORT_H_
#define CULSTM_EXPORT_H_

#if defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
/* The standard attribute syntax, so that it can follow other attributes: class [[nodiscard]] CULSTM_API Status. */
#define CULSTM_API [[gnu::visibility("default")]]
#elif defined(__GNUC__) || defined(__clang__)
#define CULSTM_API __attribute__((visibility("default")))
#else
#define CULSTM_API
#endif

#endif /* CULSTM_EXPORT_H_ */
