#include "client/table.h"

#include <algorithm>
#include <utility>

#include "client/value_format.h"

namespace tuneledger::client {

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AlignRight(size_t column) {
  if (right_aligned_.size() <= column) right_aligned_.resize(column + 1, false);
  right_aligned_[column] = true;
}

void Table::AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

std::string Table::Render(size_t indent) const {
  size_t columns = headers_.size();
  for (const auto& row : rows_) columns = std::max(columns, row.size());
  std::vector<size_t> widths(columns, 0);
  auto measure = [&widths](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i)
      widths[i] = std::max(widths[i], DisplayWidth(cells[i]));
  };
  measure(headers_);
  for (const auto& row : rows_) measure(row);

  std::string out;
  auto render_line = [&](const std::vector<std::string>& cells) {
    std::string line(indent, ' ');
    for (size_t i = 0; i < columns; ++i) {
      const std::string empty;
      const std::string& cell = i < cells.size() ? cells[i] : empty;
      const size_t padding = widths[i] - DisplayWidth(cell);
      const bool right = i < right_aligned_.size() && right_aligned_[i];
      if (i > 0) line += "  ";
      if (right) line.append(padding, ' ');
      line += cell;
      if (!right) line.append(padding, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  if (!headers_.empty()) render_line(headers_);
  for (const auto& row : rows_) render_line(row);
  return out;
}

}  // namespace tuneledger::client
